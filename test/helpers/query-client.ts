import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';

/**
 * A hand-rolled SQS Query client for tests: form-encoded requests signed with the SDK's own SigV4
 * signer, and a small XML reader for the answers (elements and text; SQS uses no attributes but
 * xmlns).
 */

export interface XmlNode {
  name: string;
  children: XmlNode[];
  text: string;
}

export interface QueryResponse {
  status: number;
  headers: Headers;
  raw: string;
  xml: XmlNode;
}

export interface QueryCallOptions {
  method?: 'POST' | 'GET';
  /** Path to send to (default '/'): older clients post to the queue URL. */
  path?: string;
  region?: string;
  service?: string;
  secretAccessKey?: string;
  /** Extra headers, signed with the rest. */
  headers?: Record<string, string>;
  /** Leave Version out. */
  noVersion?: boolean;
}

export class QueryClient {
  constructor(readonly endpoint: string, readonly accessKeyId: string, readonly secretAccessKey: string) {}

  async call(action: string, params: Record<string, string | number> = {}, options: QueryCallOptions = {}): Promise<QueryResponse> {
    const form = new URLSearchParams();
    form.set('Action', action);
    if (!options.noVersion) form.set('Version', '2012-11-05');
    for (const [name, value] of Object.entries(params)) form.set(name, String(value));
    const url = new URL(options.path ?? '/', this.endpoint);
    const method = options.method ?? 'POST';
    const body = method === 'POST' ? form.toString() : '';
    const query: Record<string, string> = {};
    if (method === 'GET') for (const [n, v] of form) query[n] = v;
    const headers: Record<string, string> = { host: url.host, ...options.headers };
    if (method === 'POST') headers['content-type'] = 'application/x-www-form-urlencoded; charset=utf-8';
    const signer = new SignatureV4({
      credentials: { accessKeyId: this.accessKeyId, secretAccessKey: options.secretAccessKey ?? this.secretAccessKey },
      region: options.region ?? 'us-east-1',
      service: options.service ?? 'sqs',
      sha256: Sha256,
    });
    const signed = await signer.sign({
      method, protocol: url.protocol, hostname: url.hostname, port: Number(url.port), path: url.pathname, query, headers, body,
    });
    const qs = method === 'GET' ? `?${new URLSearchParams(query).toString().replace(/\+/g, '%20')}` : '';
    const response = await fetch(`${url.origin}${url.pathname}${qs}`, {
      method,
      headers: signed.headers as Record<string, string>,
      body: method === 'POST' ? body : undefined,
    });
    const raw = await response.text();
    return { status: response.status, headers: response.headers, raw, xml: parseXml(raw) };
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescape(text: string): string {
  return text.replace(/&(#x?[0-9a-fA-F]+|\w+);/g, (_m, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16))
      : e.startsWith('#') ? String.fromCodePoint(Number(e.slice(1))) : ENTITIES[e] ?? `&${e};`);
}

export function parseXml(text: string): XmlNode {
  const root: XmlNode = { name: '#document', children: [], text: '' };
  const stack: XmlNode[] = [root];
  const tag = /<(\/?)([A-Za-z_][\w.:-]*)([^>]*?)(\/?)>|<\?[^>]*\?>|([^<]+)/g;
  for (let m = tag.exec(text); m; m = tag.exec(text)) {
    const top = stack[stack.length - 1]!;
    if (m[5] !== undefined) {
      top.text += unescape(m[5]);
    } else if (m[2] !== undefined) {
      if (m[1] === '/') {
        if (top.name !== m[2]) throw new Error(`XML: </${m[2]}> closes <${top.name}>`);
        stack.pop();
      } else {
        const node: XmlNode = { name: m[2], children: [], text: '' };
        top.children.push(node);
        if (m[4] !== '/') stack.push(node);
      }
    }
  }
  if (stack.length !== 1) throw new Error('XML: unclosed elements');
  return root.children[0] ?? root;
}

/** The children named `name` (all of them). */
export function all(node: XmlNode | undefined, name: string): XmlNode[] {
  return node ? node.children.filter((c) => c.name === name) : [];
}

/** The node at a path of element names below `node`, or undefined. */
export function at(node: XmlNode | undefined, ...path: string[]): XmlNode | undefined {
  let current = node;
  for (const name of path) current = current?.children.find((c) => c.name === name);
  return current;
}

/** Text at a path, or undefined when the element is absent. */
export function textAt(node: XmlNode | undefined, ...path: string[]): string | undefined {
  return at(node, ...path)?.text;
}

/** A flattened Name/Value (or Key/Value) map. */
export function mapOf(nodes: XmlNode[], key = 'Name', value = 'Value'): Record<string, string> {
  return Object.fromEntries(nodes.map((n) => [textAt(n, key) ?? '', textAt(n, value) ?? '']));
}
