import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BREASTMNIST, temporaryFolder } from './helpers.js';

const CLI = new URL('../packages/cli/dist/main.js', import.meta.url).pathname;
const EPOCHS = 6;

/** Tiny widths, so an epoch of the 546 train images takes a fraction of a second on wasm. */
const TINY_GAN = { latentSize: 16, labelEmbeddingSize: 4, generatorWidths: [8, 4], discriminatorWidths: [4, 8], batchSize: 16 };

function synthArguments(directory: string, configPath: string, extra: string[] = []): string[] {
  return [
    CLI, 'synth', BREASTMNIST, '--out', directory, '--gan-config', configPath, '--epochs', String(EPOCHS),
    '--checkpoint-every', '2', '--seconds', '3600', '--per-class', '4', '--no-quality', '--backend', 'wasm', '--quiet', ...extra,
  ];
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}

async function readHistory(directory: string): Promise<Array<{ epoch: number; discriminatorLoss: number; generatorLoss: number }>> {
  return (await readFile(join(directory, 'history.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
}

describe('synth --resume after SIGKILL', () => {
  let root: string;
  let configPath: string;
  let resumedOutput: string;

  before(async () => {
    root = await temporaryFolder('scarce-synth-resume-');
    configPath = join(root, 'gan.json');
    await writeFile(configPath, JSON.stringify(TINY_GAN));

    // Start a run and kill it once its epoch-2 checkpoint exists.
    const killedDirectory = join(root, 'killed');
    const child = spawn(process.execPath, synthArguments(killedDirectory, configPath), { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const checkpoint = join(killedDirectory, 'checkpoints', 'epoch-000002', 'state.json');
    const deadline = Date.now() + 60_000;
    while (!(await exists(checkpoint)) && Date.now() < deadline && child.exitCode === null) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL', 'the first run was killed, not finished');

    const resumed = spawnSync(process.execPath, synthArguments(killedDirectory, configPath, ['--resume']), { encoding: 'utf8' });
    assert.equal(resumed.status, 0, resumed.stderr);
    resumedOutput = resumed.stderr;

    const uninterrupted = spawnSync(process.execPath, synthArguments(join(root, 'uninterrupted'), configPath), { encoding: 'utf8' });
    assert.equal(uninterrupted.status, 0, uninterrupted.stderr);
  });
  after(async () => rm(root, { recursive: true, force: true }));

  test('resumes from the last checkpoint', () => {
    const match = /resumed from \S+epoch-(\d+): epoch (\d+)/.exec(resumedOutput);
    assert.ok(match !== null, `no resume line in:\n${resumedOutput}`);
    const epoch = Number(match[2]);
    assert.ok(epoch >= 2, `resumed from epoch ${epoch}`);
    assert.equal(epoch % 2, 0);
    assert.match(resumedOutput, new RegExp(`^epoch ${epoch + 1}/${EPOCHS} `, 'm'));
    assert.doesNotMatch(resumedOutput, new RegExp(`^epoch ${epoch}/${EPOCHS} `, 'm'));
  });

  test('history continues without a gap', async () => {
    const history = await readHistory(join(root, 'killed'));
    assert.deepEqual(history.map((log) => log.epoch), Array.from({ length: EPOCHS }, (_, i) => i + 1));
  });

  test('losses equal an uninterrupted run', async () => {
    const resumed = await readHistory(join(root, 'killed'));
    const uninterrupted = await readHistory(join(root, 'uninterrupted'));
    const losses = (history: typeof resumed) => history.map((log) => [log.discriminatorLoss, log.generatorLoss]);
    assert.deepEqual(losses(resumed), losses(uninterrupted));
  });

  test('shards match an uninterrupted run', async () => {
    const manifest = async (name: string) => JSON.parse(await readFile(join(root, name, 'manifest.json'), 'utf8')) as { shards: Array<{ sha256: string }> };
    assert.deepEqual((await manifest('killed')).shards.map((shard) => shard.sha256), (await manifest('uninterrupted')).shards.map((shard) => shard.sha256));
  });
});
