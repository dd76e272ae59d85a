import { Binary, Field, Int32, Schema, Uint32, Utf8 } from 'apache-arrow';

/**
 * The Arrow shard schema, format version 1. One row per image. The image column contains PNG
 * bytes, or with the `raw` encoding the uint8 pixels row-major and channels last, whose shape
 * the height, width and channels columns give. The class names, the encoding and the format
 * version travel in the schema metadata, so a shard can be read without its manifest.
 */
export const SHARD_FORMAT_VERSION = 1;

export const METADATA_FORMAT_VERSION = 'scarce.format_version';
export const METADATA_CLASS_NAMES = 'scarce.class_names';
export const METADATA_ENCODING = 'scarce.encoding';

/** Storage of the `image` column's pixels: PNG bytes, or raw uint8 pixels (height x width x channels). */
export type ImageEncoding = 'png' | 'raw';
export const IMAGE_ENCODINGS: readonly ImageEncoding[] = ['png', 'raw'];

export const SHARD_FIELDS = [
  new Field('image', new Binary(), false),
  new Field('label', new Int32(), false),
  new Field('height', new Int32(), false),
  new Field('width', new Int32(), false),
  new Field('channels', new Int32(), false),
  new Field('origin', new Utf8(), false),
  new Field('source_index', new Int32(), true),
  new Field('view', new Int32(), false),
  new Field('seed', new Uint32(), false),
  new Field('params', new Utf8(), true),
  new Field('split', new Utf8(), false),
];

/** Builds the shard schema with its metadata. */
export function shardSchema(classNames: readonly string[], encoding: ImageEncoding = 'png'): Schema {
  return new Schema(
    SHARD_FIELDS,
    new Map([
      [METADATA_FORMAT_VERSION, String(SHARD_FORMAT_VERSION)],
      [METADATA_CLASS_NAMES, JSON.stringify(classNames)],
      [METADATA_ENCODING, encoding],
    ]),
  );
}
