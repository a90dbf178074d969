/**
 * The sizes of the CIFAR-10 binary format (the official `cifar-10-batches-bin`
 * layout): what a record holds and how large an image is. A module of its own,
 * with no imports, so that the model can take the input shape from here without
 * pulling in the data pipeline's readers.
 *
 * @module
 */

/** Images are IMAGE_SIZE x IMAGE_SIZE pixels. */
export const IMAGE_SIZE = 32;

/** Colour channels (R, G, B). */
export const CHANNELS = 3;

/** Classes, labelled 0 to NUM_CLASSES - 1. */
export const NUM_CLASSES = 10;

/** Bytes of one image: 32 * 32 * 3 = 3072. */
export const IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE * CHANNELS;

/** Bytes of one record in a batch file: 1 label byte, then the image as R, G, B planes. */
export const RECORD_BYTES = 1 + IMAGE_BYTES;

/** Records in each batch file: the five training batches and the test batch hold 10,000 each. */
export const RECORDS_PER_BATCH = 10_000;

/** The exact size of each batch file: 10,000 records of 3,073 bytes = 30,730,000 bytes. */
export const BATCH_BYTES = RECORDS_PER_BATCH * RECORD_BYTES;
