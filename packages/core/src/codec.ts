/**
 * The image codec part of @scarce/core, without Arrow, zod or TensorFlow.js: what an
 * augmentation worker thread needs to read, convert and encode images, so it starts in tens of
 * milliseconds. sharp itself loads on first use.
 */
export * from './channels.js';
export * from './errors.js';
export * from './image-codec.js';
export * from './image-file.js';
export * from './png.js';
export * from './random.js';
export * from './records.js';
export * from './sharp-loader.js';
