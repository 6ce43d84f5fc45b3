/**
 * Shared helpers for the spool tests: temp directories, default options, a seeded PRNG and
 * deterministic bodies. Not a test file itself.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openSpool } from '../../src/spool/journal';
import type { RecoveredTransaction, RecoveryReport, Spool, SpoolOptions } from '../../src/spool/types';

export async function tempDir(): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), 'halyard-spool-'));
}

export async function removeDir(dir: string): Promise<void> {
  await fsp.rm(dir, { recursive: true, force: true });
}

export function options(dir: string, over: Partial<SpoolOptions> = {}): SpoolOptions {
  return { path: dir, fsync: true, corrupt: 'unlink', minfree: { bytes: 0, inodes: 0 }, ...over };
}

export interface Opened {
  spool: Spool;
  txs: Map<string, RecoveredTransaction>;
  report: RecoveryReport;
}

/** Open and recover; the recovered transactions keyed by id. */
export async function openRecovered(opts: SpoolOptions): Promise<Opened> {
  const spool = await openSpool(opts);
  const txs = new Map<string, RecoveredTransaction>();
  const report = await spool.recover((tx) => {
    if (txs.has(tx.id)) throw new Error(`transaction ${tx.id} recovered twice`);
    txs.set(tx.id, tx);
  });
  return { spool, txs, report };
}

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pseudo-random binary bytes (all 256 values occur), reproducible from the seed. */
export function bytes(size: number, seed: number): Buffer {
  const rnd = prng(seed);
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

export async function segmentFiles(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir)).filter((n) => /^seg-\d{16}\.hjl$/.test(n)).sort();
}
