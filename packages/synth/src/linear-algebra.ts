/**
 * Dense symmetric linear algebra in float64 for the quality metrics: eigenvalues of symmetric
 * matrices and Cholesky factors. Matrices are row-major `Float64Array`s of n x n entries.
 */

/**
 * Reduces a symmetric matrix to tridiagonal form by Householder reflections, in place, and
 * returns its diagonal and off-diagonal (`offDiagonal[i]` couples rows i and i + 1; the last
 * entry is 0). The eigenvalues are unchanged because every reflection is orthogonal.
 */
function tridiagonalise(matrix: Float64Array, n: number): { diagonal: Float64Array; offDiagonal: Float64Array } {
  const offDiagonal = new Float64Array(n);
  const v = new Float64Array(n);
  const p = new Float64Array(n);

  for (let k = 0; k < n - 2; k++) {
    // Reflect column k below the diagonal onto a multiple of the unit vector.
    let norm = 0;
    for (let i = k + 1; i < n; i++) norm += matrix[i * n + k] ** 2;
    norm = Math.sqrt(norm);
    const first = matrix[(k + 1) * n + k];
    const alpha = first > 0 ? -norm : norm;
    offDiagonal[k] = alpha;
    let vNorm = 0;
    for (let i = k + 1; i < n; i++) {
      v[i] = matrix[i * n + k] - (i === k + 1 ? alpha : 0);
      vNorm += v[i] ** 2;
    }
    if (vNorm === 0) continue;
    vNorm = Math.sqrt(vNorm);
    for (let i = k + 1; i < n; i++) v[i] /= vNorm;

    // H A H = A - 2 v q^T - 2 q v^T with p = A v, K = v^T p and q = p - K v.
    let vp = 0;
    for (let i = k + 1; i < n; i++) {
      let sum = 0;
      for (let j = k + 1; j < n; j++) sum += matrix[i * n + j] * v[j];
      p[i] = sum;
      vp += v[i] * sum;
    }
    for (let i = k + 1; i < n; i++) p[i] -= vp * v[i];
    for (let i = k + 1; i < n; i++) {
      for (let j = k + 1; j < n; j++) matrix[i * n + j] -= 2 * (v[i] * p[j] + p[i] * v[j]);
    }
  }
  if (n >= 2) offDiagonal[n - 2] = matrix[(n - 1) * n + (n - 2)];

  const diagonal = new Float64Array(n);
  for (let i = 0; i < n; i++) diagonal[i] = matrix[i * n + i];
  return { diagonal, offDiagonal };
}

/**
 * Finds the eigenvalues of a symmetric tridiagonal matrix by the implicit QL algorithm with
 * Wilkinson shifts. Overwrites `diagonal` with the eigenvalues (unsorted) and `offDiagonal`
 * with zeros.
 */
function tridiagonalEigenvalues(diagonal: Float64Array, offDiagonal: Float64Array): void {
  const n = diagonal.length;
  // Off-diagonal entries below this are treated as zero as well. A purely relative test can stall
  // on rank-deficient matrices, whose tiny eigenvalues sit next to tiny off-diagonal entries.
  let norm = 0;
  for (let i = 0; i < n; i++) norm = Math.max(norm, Math.abs(diagonal[i]) + Math.abs(offDiagonal[i]));
  const absoluteTolerance = Number.EPSILON * norm;
  for (let l = 0; l < n; l++) {
    for (let iteration = 0; ; iteration++) {
      // Find the first negligible off-diagonal entry at or after l; the block l..m splits there.
      let m = l;
      while (
        m < n - 1 &&
        Math.abs(offDiagonal[m]) > absoluteTolerance &&
        Math.abs(offDiagonal[m]) > Number.EPSILON * (Math.abs(diagonal[m]) + Math.abs(diagonal[m + 1]))
      ) {
        m++;
      }
      if (m === l) break;
      if (iteration >= 100) throw new Error('The eigenvalue iteration did not converge in 100 sweeps.');

      let g = (diagonal[l + 1] - diagonal[l]) / (2 * offDiagonal[l]);
      let r = Math.hypot(g, 1);
      g = diagonal[m] - diagonal[l] + offDiagonal[l] / (g + (g >= 0 ? r : -r));
      let sine = 1;
      let cosine = 1;
      let shift = 0;
      let deflated = false;
      for (let i = m - 1; i >= l; i--) {
        const f = sine * offDiagonal[i];
        const b = cosine * offDiagonal[i];
        r = Math.hypot(f, g);
        offDiagonal[i + 1] = r;
        if (r === 0) {
          // An exact zero splits the block: undo the pending shift and start the sweep again.
          diagonal[i + 1] -= shift;
          offDiagonal[m] = 0;
          deflated = true;
          break;
        }
        sine = f / r;
        cosine = g / r;
        g = diagonal[i + 1] - shift;
        r = (diagonal[i] - g) * sine + 2 * cosine * b;
        shift = sine * r;
        diagonal[i + 1] = g + shift;
        g = cosine * r - b;
      }
      if (deflated) continue;
      diagonal[l] -= shift;
      offDiagonal[l] = g;
      offDiagonal[m] = 0;
    }
  }
}

/** Returns the eigenvalues of a symmetric n x n matrix in ascending order. The input is not changed. */
export function symmetricEigenvalues(matrix: Float64Array, n: number): Float64Array {
  if (matrix.length !== n * n) throw new Error(`Expected ${n * n} entries for a ${n}x${n} matrix but received ${matrix.length}.`);
  const { diagonal, offDiagonal } = tridiagonalise(Float64Array.from(matrix), n);
  tridiagonalEigenvalues(diagonal, offDiagonal);
  return diagonal.sort();
}

/**
 * Returns the lower-triangular Cholesky factor L of a symmetric positive definite matrix
 * (matrix = L L^T). Throws when a pivot is not positive.
 */
export function cholesky(matrix: Float64Array, n: number): Float64Array {
  const lower = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = matrix[i * n + j];
      for (let k = 0; k < j; k++) sum -= lower[i * n + k] * lower[j * n + k];
      if (i === j) {
        if (!(sum > 0)) throw new Error(`The matrix is not positive definite (pivot ${i} is ${sum}).`);
        lower[i * n + i] = Math.sqrt(sum);
      } else {
        lower[i * n + j] = sum / lower[j * n + j];
      }
    }
  }
  return lower;
}

/** Returns A B^T for row-major A (rowsA x columns) and B (rowsB x columns). */
export function multiplyTransposed(a: Float64Array, rowsA: number, b: Float64Array, rowsB: number, columns: number): Float64Array {
  const product = new Float64Array(rowsA * rowsB);
  for (let i = 0; i < rowsA; i++) {
    const offsetA = i * columns;
    let j = 0;
    // Four rows of B per pass share each load of A's row, which measured about twice as fast in V8.
    for (; j + 4 <= rowsB; j += 4) {
      const [b0, b1, b2, b3] = [j * columns, (j + 1) * columns, (j + 2) * columns, (j + 3) * columns];
      let [sum0, sum1, sum2, sum3] = [0, 0, 0, 0];
      for (let k = 0; k < columns; k++) {
        const value = a[offsetA + k];
        sum0 += value * b[b0 + k];
        sum1 += value * b[b1 + k];
        sum2 += value * b[b2 + k];
        sum3 += value * b[b3 + k];
      }
      product[i * rowsB + j] = sum0;
      product[i * rowsB + j + 1] = sum1;
      product[i * rowsB + j + 2] = sum2;
      product[i * rowsB + j + 3] = sum3;
    }
    for (; j < rowsB; j++) {
      let sum = 0;
      for (let k = 0; k < columns; k++) sum += a[offsetA + k] * b[j * columns + k];
      product[i * rowsB + j] = sum;
    }
  }
  return product;
}
