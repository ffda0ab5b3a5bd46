/**
 * The bytes of each published representation, keyed by its ETag (which names the dataset's
 * version, the filter and the content coding), so that a version is built and compressed once
 * however many clients ask for it, concurrently or not. Memory is bounded: past `maxBytes` the
 * least recently used representations go, and one larger than the whole budget is served
 * but never kept.
 */
export class RepresentationCache {
  private readonly entries = new Map<string, { bytes: Promise<Buffer>; size: number; built: boolean }>();
  private size = 0;

  constructor(private readonly maxBytes: number) {}

  /** The cached bytes, or `build`'s, shared with every caller asking for `key` while it runs. */
  get(key: string, build: () => Promise<Buffer>): Promise<Buffer> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.bytes;
    }
    const entry = { bytes: build(), size: 0, built: false };
    this.entries.set(key, entry);
    entry.bytes.then(
      (bytes) => {
        if (this.entries.get(key) !== entry) return;
        if (bytes.length > this.maxBytes) {
          this.entries.delete(key);
          return;
        }
        entry.size = bytes.length;
        entry.built = true;
        this.size += bytes.length;
        this.evict();
      },
      // A failed build is not remembered: the next request tries again.
      () => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return entry.bytes;
  }

  /** The bytes of `key` when they are built and kept (nothing is built, nothing is reordered); else null. */
  peek(key: string): Promise<Buffer> | null {
    const hit = this.entries.get(key);
    return hit?.built ? hit.bytes : null;
  }

  private evict() {
    for (const [key, entry] of this.entries) {
      if (this.size <= this.maxBytes) return;
      if (!entry.built) continue; // still building: holds nothing yet
      this.entries.delete(key);
      this.size -= entry.size;
    }
  }
}
