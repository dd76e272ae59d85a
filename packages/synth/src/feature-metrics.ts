import { cholesky, multiplyTransposed, symmetricEigenvalues } from './linear-algebra.js';

/** Feature vectors, row-major `[rows, size]`. */
export interface FeatureMatrix {
  values: Float32Array | Float64Array;
  rows: number;
  size: number;
}

/** Wraps row-major features of `size` columns as a `FeatureMatrix`. */
export function featureMatrix(values: Float32Array | Float64Array, size: number): FeatureMatrix {
  const rows = values.length / size;
  if (!Number.isInteger(rows)) throw new Error(`${values.length} feature values do not split into rows of ${size}.`);
  return { values, rows, size };
}

/** Returns the rows of `features` at `indices` as a new matrix. */
export function selectRows(features: FeatureMatrix, indices: readonly number[]): FeatureMatrix {
  const values = new Float64Array(indices.length * features.size);
  indices.forEach((row, index) => values.set(features.values.subarray(row * features.size, (row + 1) * features.size), index * features.size));
  return { values, rows: indices.length, size: features.size };
}

/** Column means and the rows minus those means, in float64. */
function centre(features: FeatureMatrix): { mean: Float64Array; centred: Float64Array } {
  const { values, rows, size } = features;
  const mean = new Float64Array(size);
  for (let r = 0; r < rows; r++) for (let c = 0; c < size; c++) mean[c] += values[r * size + c];
  for (let c = 0; c < size; c++) mean[c] /= rows;
  const centred = new Float64Array(rows * size);
  for (let r = 0; r < rows; r++) for (let c = 0; c < size; c++) centred[r * size + c] = values[r * size + c] - mean[c];
  return { mean, centred };
}

function sumOfSquares(values: Float64Array): number {
  let sum = 0;
  for (const value of values) sum += value * value;
  return sum;
}

/**
 * Computes the Fréchet distance between Gaussians fitted to two feature sets (the statistic of
 * Heusel et al. 2017, here on whatever features are given):
 * |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^(1/2)), with unbiased covariances.
 *
 * Tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of S_a S_b. With X_a and
 * X_b the centred rows, the non-zero eigenvalues of X_a^T X_a X_b^T X_b equal those of M M^T for
 * M = X_a X_b^T, so with fewer rows than features (the usual case here: hundreds of images, 1,280
 * features) only a rows x rows symmetric eigenproblem is solved. With more rows than features it
 * uses S_a = L L^T and the eigenvalues of L^T S_b L. Rounding can leave a value slightly below 0
 * for identical sets; it is returned as 0.
 */
export function frechetDistance(a: FeatureMatrix, b: FeatureMatrix): number {
  if (a.size !== b.size) throw new Error(`Feature sizes differ: ${a.size} and ${b.size}.`);
  if (a.rows < 2 || b.rows < 2) throw new Error(`The Fréchet distance needs at least 2 rows per set but received ${a.rows} and ${b.rows}.`);
  const size = a.size;
  const { mean: meanA, centred: centredA } = centre(a);
  const { mean: meanB, centred: centredB } = centre(b);

  let meanTerm = 0;
  for (let c = 0; c < size; c++) meanTerm += (meanA[c] - meanB[c]) ** 2;
  const traceA = sumOfSquares(centredA) / (a.rows - 1);
  const traceB = sumOfSquares(centredB) / (b.rows - 1);

  let eigenvalues: Float64Array;
  if (Math.min(a.rows, b.rows) <= size) {
    const product = multiplyTransposed(centredA, a.rows, centredB, b.rows, size);
    const gram =
      a.rows <= b.rows
        ? multiplyTransposed(product, a.rows, product, a.rows, b.rows)
        : multiplyTransposed(transpose(product, a.rows, b.rows), b.rows, transpose(product, a.rows, b.rows), b.rows, a.rows);
    const scale = (a.rows - 1) * (b.rows - 1);
    eigenvalues = symmetricEigenvalues(gram, Math.min(a.rows, b.rows)).map((value) => value / scale);
  } else {
    const covarianceA = covariance(centredA, a.rows, size);
    const covarianceB = covariance(centredB, b.rows, size);
    // A ridge of 1e-10 of the mean variance keeps the factorisation defined for a rank-deficient S_a.
    const ridge = (1e-10 * traceA) / size || 1e-12;
    for (let c = 0; c < size; c++) covarianceA[c * size + c] += ridge;
    const lower = cholesky(covarianceA, size);
    const lowerT = transpose(lower, size, size);
    // L^T S_b L = (L^T S_b) L; multiplyTransposed(X, Y) gives X Y^T, and S_b is symmetric.
    const left = multiplyTransposed(lowerT, size, covarianceB, size, size);
    eigenvalues = symmetricEigenvalues(multiplyTransposed(left, size, lowerT, size, size), size);
  }
  let traceOfRoot = 0;
  for (const value of eigenvalues) traceOfRoot += Math.sqrt(Math.max(0, value));
  return Math.max(0, meanTerm + traceA + traceB - 2 * traceOfRoot);
}

function transpose(matrix: Float64Array, rows: number, columns: number): Float64Array {
  const transposed = new Float64Array(rows * columns);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) transposed[c * rows + r] = matrix[r * columns + c];
  return transposed;
}

function covariance(centred: Float64Array, rows: number, size: number): Float64Array {
  const columns = transpose(centred, rows, size);
  return multiplyTransposed(columns, size, columns, size, rows).map((value) => value / (rows - 1));
}

/** Returns the squared Euclidean distances between every row of `a` and every row of `b`, `[a.rows, b.rows]`. */
export function squaredDistances(a: FeatureMatrix, b: FeatureMatrix): Float64Array {
  if (a.size !== b.size) throw new Error(`Feature sizes differ: ${a.size} and ${b.size}.`);
  const toFloat64 = (matrix: FeatureMatrix) => (matrix.values instanceof Float64Array ? matrix.values : Float64Array.from(matrix.values));
  const valuesA = toFloat64(a);
  const valuesB = toFloat64(b);
  const normsA = rowNorms(valuesA, a.rows, a.size);
  const normsB = rowNorms(valuesB, b.rows, b.size);
  const products = multiplyTransposed(valuesA, a.rows, valuesB, b.rows, a.size);
  for (let i = 0; i < a.rows; i++) {
    for (let j = 0; j < b.rows; j++) products[i * b.rows + j] = Math.max(0, normsA[i] + normsB[j] - 2 * products[i * b.rows + j]);
  }
  return products;
}

function rowNorms(values: Float64Array, rows: number, size: number): Float64Array {
  const norms = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let c = 0; c < size; c++) sum += values[r * size + c] ** 2;
    norms[r] = sum;
  }
  return norms;
}

/**
 * Returns each row's distance to its k-th nearest other row, from a square matrix of squared
 * distances within one set. The row itself is skipped by index, so duplicates count as neighbours.
 */
export function kthNeighbourDistances(squared: Float64Array, rows: number, k: number): Float64Array {
  if (rows <= k) throw new Error(`k-nearest-neighbour radii need more than k = ${k} rows but received ${rows}.`);
  const radii = new Float64Array(rows);
  const others = new Float64Array(rows - 1);
  for (let i = 0; i < rows; i++) {
    let index = 0;
    for (let j = 0; j < rows; j++) if (j !== i) others[index++] = squared[i * rows + j];
    others.sort();
    radii[i] = Math.sqrt(others[k - 1]);
  }
  return radii;
}

/** Improved precision and recall of a generated set against a real set. */
export interface PrecisionRecall {
  /** Share of synthetic rows inside the real manifold: within the k-NN radius of some real row. */
  precision: number;
  /** Share of real rows inside the synthetic manifold. */
  recall: number;
  k: number;
}

/** Returns each real row's distance to its k-th nearest other real row. */
export function realNeighbourDistances(real: FeatureMatrix, k: number): Float64Array {
  return kthNeighbourDistances(squaredDistances(real, real), real.rows, k);
}

/**
 * Computes improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and
 * Recall Metric for Assessing Generative Models"). Each set's manifold is the union of balls
 * around its rows with the radius of the distance to the row's k-th nearest neighbour in the same
 * set. Precision is the share of synthetic rows inside the real manifold, recall the share of
 * real rows inside the synthetic one. The paper uses k = 3. `realRadii` may pass the real rows'
 * k-th neighbour distances when they are already known.
 */
export function precisionRecall(real: FeatureMatrix, synthetic: FeatureMatrix, k = 3, realRadii = realNeighbourDistances(real, k)): PrecisionRecall {
  const syntheticRadii = kthNeighbourDistances(squaredDistances(synthetic, synthetic), synthetic.rows, k);
  const across = squaredDistances(synthetic, real);

  const inside = (squared: number, radius: number) => squared <= radius * radius;
  const precision = countRows(synthetic.rows, (s) => anyOf(real.rows, (r) => inside(across[s * real.rows + r], realRadii[r])));
  const recall = countRows(real.rows, (r) => anyOf(synthetic.rows, (s) => inside(across[s * real.rows + r], syntheticRadii[s])));
  return { precision: precision / synthetic.rows, recall: recall / real.rows, k };
}

function countRows(rows: number, predicate: (row: number) => boolean): number {
  let count = 0;
  for (let row = 0; row < rows; row++) if (predicate(row)) count++;
  return count;
}

function anyOf(rows: number, predicate: (row: number) => boolean): boolean {
  for (let row = 0; row < rows; row++) if (predicate(row)) return true;
  return false;
}

/** Mean Euclidean distance over all pairs of distinct rows; 0 for fewer than 2 rows. */
export function meanPairwiseDistance(features: FeatureMatrix): number {
  if (features.rows < 2) return 0;
  const squared = squaredDistances(features, features);
  let sum = 0;
  for (let i = 0; i < features.rows; i++) for (let j = i + 1; j < features.rows; j++) sum += Math.sqrt(squared[i * features.rows + j]);
  return sum / ((features.rows * (features.rows - 1)) / 2);
}

/** Synthetic against real variety of one class. */
export interface ClassDiversity {
  className: string;
  /** Mean pairwise feature distance of the synthetic images of the class. */
  synthetic: number;
  /** The same for the real train images of the class. */
  real: number;
  /** synthetic / real; near 1 when the generator varies as much as the data. */
  ratio: number;
  /** Whether the ratio is below the collapse threshold. */
  collapsed: boolean;
}

/** Default share of real diversity below which a class counts as collapsed. */
export const COLLAPSE_THRESHOLD = 0.5;

/**
 * Compares the variety of each class's synthetic images with its real ones (mean pairwise
 * feature distance) and returns a warning naming every class whose ratio is below `threshold`.
 */
export function classDiversity(
  real: FeatureMatrix,
  realLabels: readonly number[],
  synthetic: FeatureMatrix,
  syntheticLabels: readonly number[],
  classNames: readonly string[],
  threshold = COLLAPSE_THRESHOLD,
): { classes: ClassDiversity[]; warnings: string[] } {
  const rowsOf = (labels: readonly number[], label: number) => labels.flatMap((value, row) => (value === label ? [row] : []));
  const classes = classNames.map((className, label) => {
    const realDiversity = meanPairwiseDistance(selectRows(real, rowsOf(realLabels, label)));
    const syntheticDiversity = meanPairwiseDistance(selectRows(synthetic, rowsOf(syntheticLabels, label)));
    const ratio = realDiversity === 0 ? NaN : syntheticDiversity / realDiversity;
    return { className, synthetic: syntheticDiversity, real: realDiversity, ratio, collapsed: ratio < threshold };
  });
  const warnings = classes
    .filter((entry) => entry.collapsed)
    .map((entry) => `class '${entry.className}' may have collapsed: its synthetic images vary ${(entry.ratio * 100).toFixed(0)}% as much as its real ones (threshold ${(threshold * 100).toFixed(0)}%)`);
  return { classes, warnings };
}

/** Nearness of synthetic images to the train images. */
export interface Memorisation {
  /** Per synthetic row, the index of its nearest real train row. */
  nearestReal: number[];
  /** Per synthetic row, the feature distance to that row. */
  nearestDistance: number[];
  /** Distance below which a synthetic row counts as a near copy: the `percentile` of real-to-real nearest distances. */
  threshold: number;
  percentile: number;
  /** Share of synthetic rows closer to their nearest real row than `threshold`. */
  nearCopyShare: number;
  /** Median of the synthetic rows' nearest distances, divided by the median real-to-real nearest distance. */
  medianDistanceRatio: number;
}

/** Default percentile of real-to-real nearest distances that defines a near copy. */
export const NEAR_COPY_PERCENTILE = 5;

function quantile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  const position = fraction * (sorted.length - 1);
  const below = Math.floor(position);
  const above = Math.min(sorted.length - 1, below + 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
}

/**
 * Finds each synthetic row's nearest real train row and measures how many synthetic rows are
 * nearer to the train set than real images are to each other. The threshold is the
 * `percentile`-th percentile of the distances from each real row to its nearest other real row.
 * Samples as novel as real images give a share near percentile / 100; a much larger share points
 * to copies of train images. `realNearestDistances` may pass each real row's distance to its
 * nearest other real row when it is already known.
 */
export function memorisation(
  real: FeatureMatrix,
  synthetic: FeatureMatrix,
  percentile = NEAR_COPY_PERCENTILE,
  realNearestDistances: ArrayLike<number> = realNeighbourDistances(real, 1),
): Memorisation {
  const realNearest = Array.from(realNearestDistances).sort((x, y) => x - y);
  const threshold = quantile(realNearest, percentile / 100);
  const across = squaredDistances(synthetic, real);
  const nearestReal: number[] = [];
  const nearestDistance: number[] = [];
  for (let s = 0; s < synthetic.rows; s++) {
    let best = 0;
    for (let r = 1; r < real.rows; r++) if (across[s * real.rows + r] < across[s * real.rows + best]) best = r;
    nearestReal.push(best);
    nearestDistance.push(Math.sqrt(across[s * real.rows + best]));
  }
  const nearCopies = nearestDistance.filter((distance) => distance < threshold).length;
  const medianSynthetic = quantile([...nearestDistance].sort((x, y) => x - y), 0.5);
  return {
    nearestReal,
    nearestDistance,
    threshold,
    percentile,
    nearCopyShare: nearCopies / synthetic.rows,
    medianDistanceRatio: medianSynthetic / quantile(realNearest, 0.5),
  };
}
