/** Classification metrics on predicted class probabilities. */

/** Index of the largest value in each row. */
export function argmaxRows(probabilities: Float32Array, numClasses: number): number[] {
  const predictions: number[] = [];
  for (let row = 0; row < probabilities.length / numClasses; row++) {
    let best = 0;
    for (let k = 1; k < numClasses; k++) {
      if (probabilities[row * numClasses + k] > probabilities[row * numClasses + best]) best = k;
    }
    predictions.push(best);
  }
  return predictions;
}

/** Share of predictions equal to the labels. */
export function accuracy(predictions: readonly number[], labels: readonly number[]): number {
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (predictions[i] === labels[i]) correct++;
  return labels.length === 0 ? NaN : correct / labels.length;
}

/**
 * Area under the ROC curve for scores of the positive class: the probability that a random
 * positive scores above a random negative, ties counting one half (the Mann-Whitney U statistic).
 * NaN when either class is absent.
 */
export function binaryAuc(scores: readonly number[], positives: readonly boolean[]): number {
  const order = scores.map((score, index) => ({ score, index })).sort((a, b) => a.score - b.score);
  const ranks = new Array<number>(scores.length);
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && order[end + 1].score === order[start].score) end++;
    const averageRank = (start + end) / 2 + 1;
    for (let i = start; i <= end; i++) ranks[order[i].index] = averageRank;
    start = end + 1;
  }

  let positiveCount = 0;
  let positiveRankSum = 0;
  positives.forEach((positive, index) => {
    if (positive) {
      positiveCount++;
      positiveRankSum += ranks[index];
    }
  });
  const negativeCount = scores.length - positiveCount;
  if (positiveCount === 0 || negativeCount === 0) return NaN;
  return (positiveRankSum - (positiveCount * (positiveCount + 1)) / 2) / (positiveCount * negativeCount);
}

/**
 * ROC AUC: for two classes, of class 1's probability; for more, the unweighted mean of the
 * one-vs-rest AUCs of the classes present in the labels (scikit-learn's `multi_class='ovr'`, `average='macro'`).
 */
export function rocAuc(probabilities: Float32Array, labels: readonly number[], numClasses: number): number {
  const column = (k: number) => labels.map((_, row) => probabilities[row * numClasses + k]);
  if (numClasses === 2) return binaryAuc(column(1), labels.map((label) => label === 1));
  const aucs: number[] = [];
  for (let k = 0; k < numClasses; k++) {
    const auc = binaryAuc(column(k), labels.map((label) => label === k));
    if (!Number.isNaN(auc)) aucs.push(auc);
  }
  return aucs.length === 0 ? NaN : aucs.reduce((sum, auc) => sum + auc, 0) / aucs.length;
}

/** Mean negative log-likelihood of the labels, with probabilities clipped at 1e-7. */
export function crossEntropy(probabilities: Float32Array, labels: readonly number[], numClasses: number): number {
  let total = 0;
  labels.forEach((label, row) => {
    total -= Math.log(Math.max(1e-7, probabilities[row * numClasses + label]));
  });
  return total / labels.length;
}

/** Confusion matrix: entry [true][predicted] counts. */
export function confusionMatrix(predictions: readonly number[], labels: readonly number[], numClasses: number): number[][] {
  const matrix = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  labels.forEach((label, i) => matrix[label][predictions[i]]++);
  return matrix;
}

/** Precision, recall and F1 of one class, with its number of true rows (support). */
export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/**
 * Per-class precision, recall and F1 from a confusion matrix ([true][predicted]). A ratio whose
 * denominator is 0 is reported as 0, as scikit-learn does with `zero_division=0`.
 */
export function perClassScores(confusion: number[][]): ClassScores[] {
  return confusion.map((row, k) => {
    const truePositives = row[k];
    const support = row.reduce((sum, count) => sum + count, 0);
    const predicted = confusion.reduce((sum, other) => sum + other[k], 0);
    const precision = predicted === 0 ? 0 : truePositives / predicted;
    const recall = support === 0 ? 0 : truePositives / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { precision, recall, f1, support };
  });
}

/** Accuracy, AUC, loss, confusion matrix and per-class scores of probabilities against labels. */
export interface ClassificationReport {
  loss: number;
  accuracy: number;
  auc: number;
  confusion: number[][];
  perClass: ClassScores[];
}

export function evaluateProbabilities(
  probabilities: Float32Array,
  labels: readonly number[],
  numClasses: number,
): ClassificationReport {
  const predictions = argmaxRows(probabilities, numClasses);
  const confusion = confusionMatrix(predictions, labels, numClasses);
  return {
    loss: crossEntropy(probabilities, labels, numClasses),
    accuracy: accuracy(predictions, labels),
    auc: rocAuc(probabilities, labels, numClasses),
    confusion,
    perClass: perClassScores(confusion),
  };
}
