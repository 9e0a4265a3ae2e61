/**
 * @module The tinypool entry every chunk runs through, inside a worker thread: loads the task's
 * worker file and calls it with the chunk and a stop signal backed by shared memory.
 */

/** What the pool sends a thread for one chunk. */
export interface ChunkMessage {
  /** The task's worker file (`file:` URL string). */
  file: string;
  chunk: unknown;
  /** `[0] !== 0` once the chunk should stop (set by the process's main thread). */
  stop: Int32Array;
}

/**
 * Runs one chunk.
 *
 * @param message the worker file, the chunk and the stop flag
 * @returns the worker's result
 */
export default async function runChunk({ file, chunk, stop }: ChunkMessage): Promise<unknown> {
  // `file` is always a `file:` URL (defineParallelTask checks it). Written as a template with a
  // `file://` prefix the import stays analyzable for `deno publish`, and `deno compile` does not
  // search the filesystem's root for it: the app's worker files are `--include`d by the app.
  const fn = (await import(`file://${new URL(file).pathname}`)).default;
  const signal = {
    get aborted() {
      return Atomics.load(stop, 0) !== 0;
    },
    throwIfAborted() {
      if (Atomics.load(stop, 0) !== 0) {
        throw new DOMException("The chunk was stopped", "AbortError");
      }
    },
  };
  return await fn(chunk, signal);
}
