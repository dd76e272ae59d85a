import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ImageRecord, Origin } from '@scarce/core';
import { checkNoLeakage, composeRecipe, recipeOfName, type MixRecipe } from '@scarce/train';
import { parseRunConfig } from '../packages/cli/src/config.js';

function rows(origin: Origin, count: number): ImageRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    pixels: new Uint8Array([i]),
    height: 1,
    width: 1,
    channels: 1,
    label: i % 2,
    origin,
    split: 'train',
    sourceIndex: origin === 'synthetic' ? null : i,
    view: 0,
    seed: 0,
    params: null,
  }));
}

const pools = new Map<string, ImageRecord[]>([
  ['real', rows('real', 10)],
  ['augmented', rows('augmented', 40)],
  ['synthetic', rows('synthetic', 30)],
]);

test('recipe of a name takes every row', () => {
  const recipe = recipeOfName('real+synthetic');
  assert.deepEqual(recipe.sources, [{ from: 'real' }, { from: 'synthetic' }]);
  const mix = composeRecipe(recipe, pools, 10, 0);
  assert.equal(mix.length, 40);
  assert.deepEqual(mix.slice(0, 10), pools.get('real'));
});

test('recipe draws counts and ratios', () => {
  const recipe: MixRecipe = { name: 'half', sources: [{ from: 'real' }, { from: 'augmented', count: 15 }, { from: 'synthetic', ratio: 0.5 }] };
  const mix = composeRecipe(recipe, pools, 10, 3);
  assert.equal(mix.filter((row) => row.origin === 'real').length, 10);
  assert.equal(mix.filter((row) => row.origin === 'augmented').length, 15);
  assert.equal(mix.filter((row) => row.origin === 'synthetic').length, 5);
  assert.equal(new Set(mix).size, mix.length, 'no row is drawn twice');

  const again = composeRecipe(recipe, pools, 10, 3);
  assert.deepEqual(again, mix);
  const otherSeed = composeRecipe(recipe, pools, 10, 4);
  assert.notDeepEqual(otherSeed, mix);
});

test('recipe rejects impossible sources', () => {
  assert.throws(() => composeRecipe({ name: 'big', sources: [{ from: 'synthetic', count: 31 }] }, pools, 10, 0), /Mix 'big' needs 31 rows of 'synthetic', which has 30/);
  assert.throws(() => composeRecipe({ name: 'odd', sources: [{ from: 'photos' }] }, pools, 10, 0), /Mix 'odd' names source 'photos', which is not one of real, augmented, synthetic/);
  assert.throws(() => composeRecipe({ name: 'both', sources: [{ from: 'real', count: 2, ratio: 1 }] }, pools, 10, 0), /give count or ratio, not both/);
});

test('config turns mix names into recipes', () => {
  const config = parseRunConfig({ data: { path: 'x.npz' }, train: { mixes: ['real', { name: 'more', sources: [{ from: 'real' }, { from: 'shards/extra', ratio: 2 }] }] } }, 'run.json', '/base');
  assert.deepEqual(config.train.mixes[0], { name: 'real', sources: [{ from: 'real' }] });
  assert.deepEqual(config.train.mixes[1].sources[1], { from: '/base/shards/extra', ratio: 2 });
});

test('config names a bad mix', () => {
  assert.throws(() => parseRunConfig({ data: { path: 'x.npz' }, train: { mixes: ['real+photos'] } }, 'run.json', '/base'), /train\.mixes.*'photos' is not one of/s);
  assert.throws(
    () => parseRunConfig({ data: { path: 'x.npz' }, train: { mixes: [{ name: 'x', sources: [{ from: 'real', count: 1, ratio: 1 }] }] } }, 'run.json', '/base'),
    /train\.mixes.*give count or ratio, not both/s,
  );
});

test('leakage check allows unchanged views', () => {
  const image = (pixel: number, origin: Origin, split: ImageRecord['split'], sourceIndex: number): ImageRecord => ({
    pixels: new Uint8Array([pixel, pixel]),
    height: 1,
    width: 2,
    channels: 1,
    label: 0,
    origin,
    split,
    sourceIndex,
    view: origin === 'augmented' ? 1 : 0,
    seed: 0,
    params: null,
  });
  // Train image 0 repeats test image 5, as BreastMNIST's official splits do once.
  const testRows = [image(7, 'real', 'test', 5)];
  const real = [image(7, 'real', 'train', 0), image(9, 'real', 'train', 1)];

  const unchangedView = image(7, 'augmented', 'train', 0);
  assert.deepEqual(checkNoLeakage([...real, unchangedView], testRows), ['real train image 0 equals test image 5']);

  const viewOfOtherImage = image(7, 'augmented', 'train', 1);
  assert.throws(() => checkNoLeakage([...real, viewOfOtherImage], testRows), /could leak evaluation data: augmented train image 1 equals test image 5/);
});
