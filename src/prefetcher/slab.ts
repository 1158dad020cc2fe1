/** How many numbers of each width a part of the per-stream state keeps. */
export interface SlabLayout {
  /** Float64: times in ms since the epoch (need 53 bits). */
  f64: number;
  /** Float32: counts, weights, gaps, rates (7 significant digits are plenty). */
  f32: number;
  /** Uint16: small saturating counts. */
  u16: number;
}

/** A stream's place in the pool: the chunk arrays that hold it and where its numbers start in each. */
export interface SlabRef {
  f64: Float64Array;
  f32: Float32Array;
  u16: Uint16Array;
  o64: number;
  o32: number;
  o16: number;
  /** Slot number in the pool; −1 once freed (late writers check it). */
  slot: number;
}

const EMPTY64 = new Float64Array(0);
const EMPTY32 = new Float32Array(0);
const EMPTY16 = new Uint16Array(0);

/** A ref that holds no slot yet (a stream before allocation, or after it was freed). */
export function emptySlab(): SlabRef {
  return { f64: EMPTY64, f32: EMPTY32, u16: EMPTY16, o64: 0, o32: 0, o16: 0, slot: -1 };
}

/**
 * The numeric state of every stream, in chunks of shared typed arrays. A typed array of its own
 * per stream and model costs V8 ~150 bytes of headers each, more than many of the payloads; here a
 * stream costs exactly its numbers. Chunks are never moved (no copy on growth, references stay
 * valid); freed slots are zeroed and reused first.
 */
export class SlabPool {
  private readonly chunks64: Float64Array[] = [];
  private readonly chunks32: Float32Array[] = [];
  private readonly chunks16: Uint16Array[] = [];
  private readonly free: number[] = [];
  private next = 0;
  private inUse = 0;

  constructor(readonly layout: SlabLayout, readonly chunkSlots = 1024) {
    for (const k of ['f64', 'f32', 'u16'] as const) {
      if (!Number.isInteger(layout[k]) || layout[k] < 0) throw new RangeError(`slab layout ${k} must be a non-negative integer`);
    }
  }

  /** Bytes of numbers per stream. */
  get bytesPerSlot(): number {
    return this.layout.f64 * 8 + this.layout.f32 * 4 + this.layout.u16 * 2;
  }

  /** Bytes the pool holds (all chunks, used or not). */
  get allocatedBytes(): number {
    return this.chunks64.length * this.chunkSlots * this.bytesPerSlot;
  }

  get slotsInUse(): number {
    return this.inUse;
  }

  /** Gives `ref` a zeroed slot. */
  alloc(ref: SlabRef): void {
    if (ref.slot >= 0) throw new Error('slab ref already holds a slot');
    const slot = this.free.pop() ?? this.next++;
    const chunk = Math.floor(slot / this.chunkSlots);
    if (chunk === this.chunks64.length) this.addChunk();
    const i = slot - chunk * this.chunkSlots;
    const { f64, f32, u16 } = this.layout;
    ref.f64 = this.chunks64[chunk]!;
    ref.f32 = this.chunks32[chunk]!;
    ref.u16 = this.chunks16[chunk]!;
    ref.o64 = i * f64;
    ref.o32 = i * f32;
    ref.o16 = i * u16;
    ref.slot = slot;
    this.inUse++;
  }

  /** Zeroes and returns `ref`'s slot; the ref then points at nothing. */
  release(ref: SlabRef): void {
    if (ref.slot < 0) return;
    const { f64, f32, u16 } = this.layout;
    ref.f64.fill(0, ref.o64, ref.o64 + f64);
    ref.f32.fill(0, ref.o32, ref.o32 + f32);
    ref.u16.fill(0, ref.o16, ref.o16 + u16);
    this.free.push(ref.slot);
    Object.assign(ref, emptySlab());
    this.inUse--;
  }

  private addChunk(): void {
    const n = this.chunkSlots;
    this.chunks64.push(new Float64Array(n * this.layout.f64));
    this.chunks32.push(new Float32Array(n * this.layout.f32));
    this.chunks16.push(new Uint16Array(n * this.layout.u16));
  }
}
