/**
 * The part of @scarce/core that reads and writes images and shards, without TensorFlow.js, for
 * code that must start fast. The package root's backend selection loads TensorFlow.js, which
 * costs about half a second and 100 MB a thread.
 */
export * from './channels.js';
export * from './dataset-source.js';
export * from './errors.js';
export * from './files.js';
export * from './folder.js';
export * from './image-codec.js';
export * from './image-file.js';
export * from './manifest.js';
export * from './npz.js';
export * from './png.js';
export * from './progress.js';
export * from './random.js';
export * from './records.js';
export * from './shard-schema.js';
export * from './shards.js';
