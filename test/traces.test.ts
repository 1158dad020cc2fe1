import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InputError } from '../src/core/errors.ts';
import { openAzure } from '../src/sim/traces/azure.ts';
import { openEvents } from '../src/sim/traces/events.ts';
import { detectFormat, openTrace } from '../src/sim/traces/open.ts';
import type { TraceEvent, TraceSource } from '../src/sim/traces/types.ts';

/** Real trace fixtures inside the repository (see test/fixtures/README.md). */
const FIXTURES = join(import.meta.dirname, 'fixtures');

const dir = mkdtempSync(join(tmpdir(), 'pkp-traces-'));
let fileNo = 0;
function file(text: string, ext = 'csv'): string {
  const path = join(dir, `t${fileNo++}.${ext}`);
  writeFileSync(path, text);
  return path;
}

async function collect(source: TraceSource): Promise<TraceEvent[]> {
  const out: TraceEvent[] = [];
  for await (const e of source) out.push(e);
  return out;
}

/** Asserts that loading fails with an InputError naming the line and the problem. */
async function rejectsAt(source: TraceSource, line: number, problem: RegExp): Promise<void> {
  await assert.rejects(collect(source), (err: unknown) => {
    assert.ok(err instanceof InputError, `expected InputError, got ${String(err)}`);
    assert.equal(err.line, line);
    assert.ok(err.message.includes(`line ${line}`), err.message);
    assert.match(err.message, problem);
    return true;
  });
}

describe('generic events, CSV', () => {
  it('parses the minimal columns exactly', async () => {
    const path = file('ts_ms,queue,op\n0,a,send\n5,b,receive\n5,a,delete\n');
    assert.deepEqual(await collect(openEvents(path)), [
      { t: 0, queue: 'a', op: 'send' },
      { t: 5, queue: 'b', op: 'receive' },
      { t: 5, queue: 'a', op: 'delete' },
    ]);
  });

  it('reads optional columns in any order, CRLF endings, empty optional cells', async () => {
    const path = file(
      'op,bytes,queue,principal,ts_ms,node\r\n' +
        'send,120,orders,alice,10,n1\r\n' +
        'receive,,orders,,11,\r\n' +
        '\r\n' +
        'delete,0,billing,bob,20,n2', // no final newline
    );
    const reader = openEvents(path);
    assert.deepEqual(await collect(reader), [
      { t: 10, queue: 'orders', op: 'send', node: 'n1', principal: 'alice', bytes: 120 },
      { t: 11, queue: 'orders', op: 'receive' },
      { t: 20, queue: 'billing', op: 'delete', node: 'n2', principal: 'bob', bytes: 0 },
    ]);
    assert.deepEqual(reader.stats, { rows: 3, events: 3, skipped: 0 });
  });

  it('reads a file larger than one read chunk without losing rows at chunk edges', async () => {
    const rows = ['ts_ms,queue,op,principal'];
    for (let i = 0; i < 60_000; i++) rows.push(`${i * 3},queue-${i % 97}-with-a-long-name,send,principal-${i % 5}`);
    const path = file(rows.join('\n') + '\n');
    let n = 0;
    let last: TraceEvent | undefined;
    for await (const e of openEvents(path)) {
      assert.equal(e.t, n * 3);
      assert.equal(e.queue, `queue-${n % 97}-with-a-long-name`);
      n++;
      last = e;
    }
    assert.equal(n, 60_000);
    assert.equal(last?.principal, 'principal-4');
  });

  it('serves the same events in batches', async () => {
    const path = file('ts_ms,queue,op\n1,a,send\n2,a,send\n');
    const flat: TraceEvent[] = [];
    for await (const b of openEvents(path).batches()) flat.push(...b);
    assert.deepEqual(flat, await collect(openEvents(path)));
  });

  it('reports each kind of bad row with its line number', async () => {
    const h = 'ts_ms,queue,op,bytes\n0,a,send,1\n';
    const cases: [string, RegExp][] = [
      ['1.5,a,send,1', /ts_ms "1\.5" is neither a non-negative integer nor an ISO-8601 date-time/],
      ['-3,a,send,1', /ts_ms "-3"/],
      ['x,a,send,1', /ts_ms "x"/],
      [',a,send,1', /ts_ms ""/],
      ['1,,send,1', /queue is empty/],
      ['1,a,SEND,1', /op "SEND" is not one of send, receive, delete/],
      ['1,a,purge,1', /op "purge"/],
      ['1,a,send,-1', /bytes "-1" is not a non-negative integer/],
      ['1,a,send,2.5', /bytes "2\.5"/],
      ['1,a,send', /expected 4 fields, found 3/],
      ['1,a,send,1,9', /expected 4 fields, found more/],
    ];
    for (const [row, problem] of cases) {
      await rejectsAt(openEvents(file(`${h}${row}\n`)), 3, problem);
    }
  });

  it('rejects bad headers on line 1', async () => {
    await rejectsAt(openEvents(file('ts_ms,queue,op,colour\n1,a,send,red\n')), 1, /unknown column "colour"/);
    await rejectsAt(openEvents(file('ts_ms,op\n1,send\n')), 1, /lacks column\(s\) queue/);
    await rejectsAt(openEvents(file('queue,op\na,send\n')), 1, /lacks a time column \(ts_ms, ts_s, ts\)/);
    await rejectsAt(openEvents(file('ts_ms,ts,queue,op\n')), 1, /two time columns/);
    await rejectsAt(openEvents(file('ts_ms,queue,op,queue\n')), 1, /appears twice/);
  });

  it('refuses an empty file', async () => {
    await rejectsAt(openEvents(file('\n\n')), 1, /file is empty/);
    await rejectsAt(openEvents(file('', 'jsonl')), 1, /file is empty/);
  });

  it('detects time going backwards and names the line', async () => {
    const path = file('ts_ms,queue,op\n10,a,send\n20,a,send\n20,b,send\n19,a,send\n30,a,send\n');
    await rejectsAt(openEvents(path), 5, /ts_ms 19 is before the previous event's 20 \(out of order\)/);
  });

  it('lenient mode skips and counts bad rows, out-of-order ones included', async () => {
    const path = file('ts_ms,queue,op\n10,a,send\nx,a,send\n20,,send\n5,a,send\n20,a,nope\n30,a,receive\n');
    const reader = openEvents(path, { lenient: true });
    assert.deepEqual(await collect(reader), [
      { t: 10, queue: 'a', op: 'send' },
      { t: 30, queue: 'a', op: 'receive' },
    ]);
    assert.deepEqual(reader.stats, { rows: 6, events: 2, skipped: 4 });
  });
});

describe('generic events, JSON lines', () => {
  const text =
    '{"ts_ms":1,"queue":"a","op":"send","principal":"p","bytes":64}\n' +
    '\n' +
    '{"ts_ms":2,"queue":"b","op":"receive","node":"n3"}\n' +
    '{"ts_ms":2,"queue":"a","op":"delete","node":null,"bytes":null}\n';
  const expected: TraceEvent[] = [
    { t: 1, queue: 'a', op: 'send', principal: 'p', bytes: 64 },
    { t: 2, queue: 'b', op: 'receive', node: 'n3' },
    { t: 2, queue: 'a', op: 'delete' },
  ];

  it('parses .jsonl and .ndjson files exactly', async () => {
    assert.deepEqual(await collect(openEvents(file(text, 'jsonl'))), expected);
    assert.deepEqual(await collect(openEvents(file(text, 'ndjson'))), expected);
  });

  it('detects JSON lines by a leading { whatever the extension', async () => {
    assert.deepEqual(await collect(openEvents(file(`  ${text}`, 'txt'))), expected);
  });

  it('RFC 4180 quoted fields: commas and doubled quotes inside, a quoted header', async () => {
    const path = file('"ts_ms","queue",op,principal\n1,"orders,eu",send,"a ""b"""\n2,plain,"receive",\n');
    assert.deepEqual(await collect(openEvents(path)), [
      { t: 1, queue: 'orders,eu', op: 'send', principal: 'a "b"' },
      { t: 2, queue: 'plain', op: 'receive' },
    ]);
    await rejectsAt(openEvents(file('ts_ms,queue,op\n1,"open,send\n')), 2, /quoted field is not closed/);
  });

  it('ISO-8601 and seconds timestamps (ts_s, ts; ts_ms also takes a date-time)', async () => {
    const iso = file('ts,queue,op\n2026-12-01T22:00:00Z,a,send\n2026-12-01T22:00:01.5+00:00,a,send\n2026-12-01 22:00:02,a,send\n1796162403,a,send\n');
    const base = Date.UTC(2026, 11, 1, 22, 0, 0);
    assert.deepEqual((await collect(openEvents(iso))).map((e) => e.t), [base, base + 1500, base + 2000, 1_796_162_403_000]);
    const seconds = file('ts_s,queue,op\n1.25,a,send\n2,a,send\n');
    assert.deepEqual((await collect(openEvents(seconds))).map((e) => e.t), [1250, 2000]);
    const mixed = file('ts_ms,queue,op\n5,a,send\n2026-12-01T22:00:00.004Z,a,send\n');
    assert.deepEqual((await collect(openEvents(mixed))).map((e) => e.t), [5, base + 4]);
    const jsonl = file('{"ts":"2026-12-01T22:00:00Z","queue":"a","op":"send"}\n{"ts_s":1796162400.5,"queue":"a","op":"send"}\n', 'jsonl');
    assert.deepEqual((await collect(openEvents(jsonl))).map((e) => e.t), [base, base + 500]);
    await rejectsAt(openEvents(file('ts,queue,op\n2026-13-45T99:00:00Z,a,send\n')), 2, /neither a non-negative number of seconds nor an ISO-8601/);
  });

  it('reports bad JSON rows with their line numbers', async () => {
    const first = '{"ts_ms":1,"queue":"a","op":"send"}\n';
    const cases: [string, RegExp][] = [
      ['{"ts_ms":2,"queue":"a",', /not valid JSON/],
      ['[1,2]', /not a JSON object/],
      ['{"ts_ms":"2","queue":"a","op":"send"}', /ts_ms "\\"2\\"" is neither a non-negative integer nor an ISO-8601 date-time/],
      ['{"ts_ms":2.5,"queue":"a","op":"send"}', /ts_ms "2\.5"/],
      ['{"ts_ms":2,"op":"send"}', /queue is missing or empty/],
      ['{"ts_ms":2,"queue":"a","op":"poll"}', /op "\\"poll\\"" is not one of/],
      ['{"ts_ms":2,"queue":"a","op":"send","bytes":-4}', /bytes "-4"/],
      ['{"ts_ms":2,"queue":"a","op":"send","colour":"red"}', /unknown field "colour"/],
      ['{"ts_ms":0,"queue":"a","op":"send"}', /out of order/],
    ];
    for (const [row, problem] of cases) {
      await rejectsAt(openEvents(file(`${first}${row}\n`, 'jsonl')), 2, problem);
    }
  });

  it('lenient mode skips bad JSON rows', async () => {
    const reader = openEvents(file('{"ts_ms":1,"queue":"a","op":"send"}\nnot json\n{"ts_ms":3,"queue":"a","op":"send"}\n', 'jsonl'), {
      lenient: true,
    });
    assert.equal((await collect(reader)).length, 2);
    assert.deepEqual(reader.stats, { rows: 3, events: 2, skipped: 1 });
  });
});

describe('Azure Functions per-minute loader', () => {
  // Minutes 3..5; q1 and q2 are queue-triggered, h1 is http.
  const withTrigger =
    'HashOwner,HashApp,HashFunction,Trigger,3,4,5\n' +
    'o1,a1,q1aaaaaaaaaaaaaaaaaa,queue,2,0,5\n' +
    'o1,a1,h1bbbbbbbbbbbbbbbbbb,http,1,1,1\n' +
    'o2,a2,q2cccccccccccccccccc,queue,0,3,1\n';
  const noTrigger =
    'HashOwner,HashApp,HashFunction,minute_3,minute_4,minute_5\n' +
    'o1,a1,q1aaaaaaaaaaaaaaaaaa,2,0,5\n' +
    'o1,a1,h1bbbbbbbbbbbbbbbbbb,1,1,1\n' +
    'o2,a2,q2cccccccccccccccccc,0,3,1\n';
  const q1 = 'q1aaaaaaaaaaaaaa';
  const h1 = 'h1bbbbbbbbbbbbbb';
  const q2 = 'q2cccccccccccccc';

  /** Events counted by "queue@minute" (1-based minute of day). */
  function tally(events: TraceEvent[]): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of events) {
      const key = `${e.queue}@${Math.floor(e.t / 60_000) + 1}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  function assertSorted(events: TraceEvent[]): void {
    for (let i = 1; i < events.length; i++) assert.ok(events[i - 1]!.t <= events[i]!.t, `not sorted at ${i}`);
  }

  const expectedAll = { [`${q1}@3`]: 2, [`${q1}@5`]: 5, [`${h1}@3`]: 1, [`${h1}@4`]: 1, [`${h1}@5`]: 1, [`${q2}@4`]: 3, [`${q2}@5`]: 1 };

  for (const [name, text] of [
    ['numeric minute columns with Trigger', withTrigger],
    ['minute_<m> columns without Trigger', noTrigger],
  ] as const) {
    it(`expands ${name}: exact counts, instants inside their minute, sorted`, async () => {
      const reader = openAzure(file(text), { seed: 42 });
      const events = await collect(reader);
      assert.equal(events.length, 14);
      assert.deepEqual(tally(events), expectedAll);
      for (const e of events) {
        assert.equal(e.op, 'send');
        assert.ok(Number.isInteger(e.t) && e.t >= 2 * 60_000 && e.t < 5 * 60_000, `t ${e.t} outside minutes 3..5`);
      }
      assertSorted(events);
      assert.deepEqual(reader.stats, { rows: 3, events: 14, skipped: 0 });
    });
  }

  it('keeps only rows of the requested trigger', async () => {
    const events = await collect(openAzure(file(withTrigger), { seed: 1, trigger: 'queue' }));
    assert.deepEqual(tally(events), { [`${q1}@3`]: 2, [`${q1}@5`]: 5, [`${q2}@4`]: 3, [`${q2}@5`]: 1 });
  });

  it('refuses a trigger filter when the file has no Trigger column', async () => {
    await rejectsAt(openAzure(file(noTrigger), { seed: 1, trigger: 'queue' }), 1, /no Trigger column/);
  });

  it('is deterministic per seed, and another seed draws other instants', async () => {
    const path = file(withTrigger);
    const a = await collect(openAzure(path, { seed: 7 }));
    const b = await collect(openAzure(path, { seed: 7 }));
    const c = await collect(openAzure(path, { seed: 8 }));
    assert.deepEqual(a, b);
    assert.deepEqual(tally(a), tally(c));
    assert.notDeepEqual(a.map((e) => e.t), c.map((e) => e.t));
  });

  it("a queue's instants do not depend on which other rows the filter keeps", async () => {
    const path = file(withTrigger);
    const all = await collect(openAzure(path, { seed: 3 }));
    const queues = await collect(openAzure(path, { seed: 3, trigger: 'queue' }));
    assert.deepEqual(queues.filter((e) => e.queue === q1), all.filter((e) => e.queue === q1));
  });

  it('names queues by the full hash when short prefixes collide, and by owner+app+function when the hash repeats', async () => {
    const text =
      'HashOwner,HashApp,HashFunction,1\n' +
      'o,a,samesamesamesame-1,1\n' +
      'o,a,samesamesamesame-2,1\n' +
      'o,a,dupdupdupdupdupdup,1\n' +
      'o,b,dupdupdupdupdupdup,1\n';
    const queues = new Set((await collect(openAzure(file(text), { seed: 1 }))).map((e) => e.queue));
    assert.equal(queues.size, 4);
    assert.ok(queues.has('samesamesamesame-1') && queues.has('samesamesamesame-2'));
    for (const q of queues) if (!q.startsWith('same')) assert.match(q, /^[0-9a-f]{16}$/);
  });

  it('reports bad cells and wrong column counts with their line numbers', async () => {
    const h = 'HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f0,queue,1,1\n';
    const cases: [string, RegExp][] = [
      ['o,a,f1,queue,1,x', /minute 2: count "x" is not a non-negative integer/],
      ['o,a,f1,queue,-1,1', /minute 1: count "-1"/],
      ['o,a,f1,queue,1.5,1', /count "1\.5"/],
      ['o,a,f1,queue,1,', /minute 2: count ""/],
      ['o,a,f1,queue,1', /expected 6 fields, found 5/],
      ['o,a,f1,queue,1,2,3', /expected 6 fields, found 7/],
      ['o,a', /expected 6 fields, found 2/],
    ];
    for (const [row, problem] of cases) {
      await rejectsAt(openAzure(file(`${h}${row}\n`), { seed: 1 }), 3, problem);
    }
    await rejectsAt(openAzure(file('HashOwner,HashApp,Function,1\n'), { seed: 1 }), 1, /expected HashFunction/);
    await rejectsAt(openAzure(file('HashOwner,HashApp,HashFunction,2,1\n'), { seed: 1 }), 1, /minute 1 does not follow minute 2/);
    await rejectsAt(openAzure(file('HashOwner,HashApp,HashFunction,Trigger,min3\n'), { seed: 1 }), 1, /is not a minute/);
  });

  it('lenient mode skips bad rows and counts them', async () => {
    const text = 'HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f0,queue,1,1\no,a,f1,queue,1,x\no,a,f2,queue,2\no,a,f3,queue,0,4\n';
    const reader = openAzure(file(text), { seed: 1, lenient: true });
    assert.equal((await collect(reader)).length, 6);
    assert.deepEqual(reader.stats, { rows: 4, events: 6, skipped: 2 });
  });

  it('the real 8-hour sample with trigger queue yields exactly the queue rows\' total', async () => {
    const path = join(FIXTURES, 'azure2019-250fn-8h.csv');
    // The expected total, computed from the text with a plain split.
    const lines = readFileSync(path, 'utf8').split(/\r?\n/).filter((l) => l.length > 0);
    let expected = 0;
    let queueRows = 0;
    for (const line of lines.slice(1)) {
      const cells = line.split(',');
      if (cells[3] !== 'queue') continue;
      queueRows++;
      for (const c of cells.slice(4)) expected += Number(c);
    }
    assert.equal(queueRows, 36);
    const reader = openAzure(path, { seed: 11, trigger: 'queue' });
    let n = 0;
    let last = -1;
    const queues = new Set<string>();
    for await (const e of reader) {
      assert.ok(e.t >= last);
      last = e.t;
      queues.add(e.queue);
      n++;
    }
    assert.equal(n, expected);
    assert.equal(queues.size, 36);
    assert.ok(last < 960 * 60_000);
    assert.deepEqual(reader.stats, { rows: 250, events: expected, skipped: 0 });
  });
});

describe('openTrace', () => {
  it('detects the format from the header', async () => {
    const azure = file('HashOwner,HashApp,HashFunction,Trigger,1\no,a,f,queue,2\n');
    const events = file('ts_ms,queue,op\n1,a,send\n');
    assert.equal(detectFormat(azure), 'azure');
    assert.equal(detectFormat(events), 'events');
    assert.equal(openTrace(azure, { trigger: 'queue' }).format, 'azure');
    assert.equal((await collect(openTrace(azure, { seed: 5 }))).length, 2);
    assert.deepEqual(await collect(openTrace(events)), [{ t: 1, queue: 'a', op: 'send' }]);
    assert.equal(detectFormat(join(FIXTURES, 'example-events.csv')), 'events');
    assert.equal(detectFormat(join(FIXTURES, 'azure2019-10fn-24h.csv')), 'azure');
  });

  it('honours an explicit format, refuses a trigger on events, and names an unreadable path', async () => {
    const events = file('ts_ms,queue,op\n1,a,send\n');
    await assert.rejects(collect(openTrace(events, { format: 'azure' })), /line 1: not an Azure Functions header/);
    assert.throws(() => openTrace(events, { trigger: 'queue' }), /trigger filter applies only to Azure/);
    assert.throws(() => openTrace(join(dir, 'missing.csv')), /cannot read trace .*missing\.csv/);
  });

  it('loads the example events fixture completely, with stats', async () => {
    const reader = openTrace(join(FIXTURES, 'example-events.csv'));
    const events = await collect(reader);
    assert.equal(events.length, 2_000);
    assert.deepEqual(events[0], { t: 28800094, queue: '1fa0653520369369', op: 'send' });
    assert.deepEqual(reader.stats, { rows: 2_000, events: 2_000, skipped: 0 });
  });

  it('stops reading when the consumer breaks early, and can be iterated again', async () => {
    const reader = openTrace(join(FIXTURES, 'example-events.csv'));
    let n = 0;
    for await (const _ of reader) if (++n === 10) break;
    assert.equal(n, 10);
    assert.equal((await collect(reader)).length, 2_000);
  });
});
