import * as tf from '@tensorflow/tfjs';

/** Returns the largest divisor of `count` up to `limit`, which is the group size that `MinibatchStd` uses for `count` images. */
export function largestDivisorUpTo(count: number, limit: number): number {
  let divisor = Math.min(limit, count);
  while (count % divisor !== 0) divisor--;
  return divisor;
}

/** Configuration of `MinibatchStd`. */
export interface MinibatchStdArgs {
  /** Images per group that share one statistic; default 4. A batch not divisible by it uses its largest divisor below the group size. */
  groupSize?: number;
  name?: string;
}

/**
 * Appends one channel with the standard deviation of the features across a small group of
 * images, averaged over features and positions (the minibatch standard deviation layer of
 * Progressive GAN). It lets the discriminator see how varied a group is, which a per-image
 * discriminator cannot, so a generator that makes near-identical images is caught early. Groups are consecutive images: a batch of n real then n fake images mixes none
 * when n is divisible by the group size.
 */
export class MinibatchStd extends tf.layers.Layer {
  static className = 'MinibatchStd';
  private readonly groupSize: number;

  constructor(args: MinibatchStdArgs = {}) {
    super({ name: args.name });
    this.groupSize = args.groupSize ?? 4;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const shape = inputShape as tf.Shape;
    return [shape[0], shape[1], shape[2], (shape[3] as number) + 1];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const [count, height, width, channels] = x.shape;
      const group = largestDivisorUpTo(count, this.groupSize);

      const grouped = tf.reshape(x, [count / group, group, height, width, channels]);
      const centred = tf.sub(grouped, tf.mean(grouped, 1, true));
      const std = tf.sqrt(tf.add(tf.mean(tf.square(centred), 1), 1e-8));
      const perGroup = tf.mean(std, [1, 2, 3]);
      // One value per group, repeated for every image of the group and every position.
      const perImage = tf.reshape(tf.tile(tf.reshape(perGroup, [count / group, 1]), [1, group]), [count, 1, 1, 1]);
      const channel = tf.mul(perImage, tf.ones([1, height, width, 1]));
      return tf.concat([x, channel], 3);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), groupSize: this.groupSize };
  }
}
tf.serialization.registerClass(MinibatchStd);
