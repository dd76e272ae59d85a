import * as tf from '@tensorflow/tfjs';

/** Configuration of `TwiceDifferentiableLeakyRelu`. */
export interface TwiceDifferentiableLeakyReluArgs {
  /** Slope for negative inputs; default 0.2. */
  alpha?: number;
  name?: string;
}

/**
 * LeakyReLU computed as ((1 + alpha) x + (1 - alpha) |x|) / 2, which equals max(x, alpha x) for
 * alpha in [0, 1]. The gradient of tfjs 4.22's own leakyRelu (tfjs-core's LeakyRelu_grad) masks
 * with `greater`, which has no gradient itself. So a penalty on the discriminator's input gradient
 * (R1) cannot be trained through it. The gradient of abs is built on `step`, whose gradient tfjs defines as zero.
 */
export class TwiceDifferentiableLeakyRelu extends tf.layers.Layer {
  static className = 'TwiceDifferentiableLeakyRelu';
  private readonly alpha: number;

  constructor(args: TwiceDifferentiableLeakyReluArgs = {}) {
    super({ name: args.name });
    this.alpha = args.alpha ?? 0.2;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return tf.add(tf.mul(x, (1 + this.alpha) / 2), tf.mul(tf.abs(x), (1 - this.alpha) / 2));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), alpha: this.alpha };
  }
}
tf.serialization.registerClass(TwiceDifferentiableLeakyRelu);
