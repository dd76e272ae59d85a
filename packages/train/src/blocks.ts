import type * as tf from '@tensorflow/tfjs';

/** A run of consecutive layers that belong together, e.g. MobileNetV2's `block_16_*`. */
export interface BackboneBlock {
  name: string;
  layers: tf.layers.Layer[];
  params: number;
}

/**
 * Returns the block a layer belongs to, from the naming of Keras Applications: `block_16_expand` and
 * `conv4_block2_out` are in `block_16` and `conv4_block2`, `expanded_conv_project` in
 * `expanded_conv`. Other layers (the stem, the last convolution) form blocks of their own, with
 * their padding, batch norm and activation joined to them (`Conv1_pad`, `Conv1`, `bn_Conv1`,
 * `Conv1_relu`).
 */
export function blockName(layerName: string): string {
  const block = /^(.*?block_?\d+)(_|$)/.exec(layerName);
  if (block) return block[1];
  const expanded = /^(expanded_conv(_\d+)?)(_|$)/.exec(layerName);
  if (expanded) return expanded[1];
  return layerName.replace(/^bn_/, '').replace(/(_bn|_relu|_activation|_pad)$/i, '');
}

/** Groups a model's layers into consecutive blocks, in order; the input layer is left out. */
export function backboneBlocks(model: tf.LayersModel): BackboneBlock[] {
  const blocks: BackboneBlock[] = [];
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    const name = blockName(layer.name);
    const last = blocks.at(-1);
    const params = layer.countParams();
    // A parameterless layer outside any known block (e.g. the final `out_relu`) ends the block before it.
    const joinsLast = last !== undefined && (last.name === name || (params === 0 && !blocks.some((block) => block.name === name) && !/block|expanded_conv/.test(layer.name)));
    if (joinsLast) {
      last!.layers.push(layer);
      last!.params += params;
    } else {
      blocks.push({ name, layers: [layer], params });
    }
  }
  return blocks;
}

/** Describes a model layer by layer, grouped by block, for `scarce backbone inspect`. */
export function describeBackbone(model: tf.LayersModel): string {
  const lines = [`${model.name}: ${model.layers.length} layers, ${model.countParams().toLocaleString('en-US')} parameters`];
  lines.push(`input ${JSON.stringify(model.inputs[0].shape)} -> output ${JSON.stringify(model.outputs[0].shape)}`, '');
  const blocks = backboneBlocks(model);
  for (const [index, block] of blocks.entries()) {
    const fromEnd = blocks.length - index;
    lines.push(`block ${block.name} (last ${fromEnd}; ${block.params.toLocaleString('en-US')} params)`);
    for (const layer of block.layers) {
      const shape = JSON.stringify((layer.outputShape as number[]) ?? null);
      lines.push(`  ${layer.name.padEnd(28)} ${layer.getClassName().padEnd(22)} ${shape.padEnd(22)} ${layer.countParams()}`);
    }
  }
  return lines.join('\n');
}
