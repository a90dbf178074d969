/**
 * An offline stand-in for `cifar-10-batches-bin` of the real size, for tests that run the
 * notebook's cells.
 *
 * @module
 */
import { join } from "node:path";
import { CIFAR10_CLASSES } from "../../lib/data.ts";
import { recordsOf, repeatRecords } from "./cifar10_fixture.ts";
import { syntheticSplit } from "./synthetic.ts";

/**
 * Writes `dir/cifar-10-batches-bin` with 10,000 records a file, as `loadCifar10()` requires:
 * each training batch repeats 60 synthetic images, the test batch 100.
 *
 * @param dir The folder to write into (it must exist).
 */
export async function writeSyntheticCifar(dir: string): Promise<void> {
  const folder = join(dir, "cifar-10-batches-bin");
  await Deno.mkdir(folder, { recursive: true });
  for (let k = 1; k <= 5; k++) {
    const records = repeatRecords(recordsOf(syntheticSplit(60, k)));
    await Deno.writeFile(join(folder, `data_batch_${k}.bin`), records);
  }
  const test = repeatRecords(recordsOf(syntheticSplit(100, 9)));
  await Deno.writeFile(join(folder, "test_batch.bin"), test);
  await Deno.writeTextFile(join(folder, "batches.meta.txt"), CIFAR10_CLASSES.join("\n") + "\n");
}
