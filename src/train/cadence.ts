// What the autoencoder training loops (VQGAN, KL, preview distillation) do after each step:
// accumulate the step's metrics, write their means every `logEvery` steps, save samples
// every `sampleEvery`, ask whether to stop (Ctrl-C / SIGTERM), and checkpoint every
// `ckptEvery` steps, at the last step and when stopping.
import { mean } from '../eval/metrics.ts';

export interface CadenceOptions {
  maxSteps: number;
  logEvery: number;
  sampleEvery: number;
  ckptEvery: number;
  /** a metrics line (step, split 'train', lr and each accumulated metric's mean) */
  log(line: Record<string, unknown>): void;
  /** sample grids and plots */
  sample(): Promise<void>;
  checkpoint(): void;
  shouldStop?: () => boolean;
  onStep?: (step: number, m: Record<string, number>) => void;
  /** which of the step's metrics are logged (default: all) */
  keys?: readonly string[];
}

export class StepCadence {
  private acc: Record<string, number[]> = {};

  constructor(private o: CadenceOptions) {}

  /** After step `step` (counted from 1) at learning rate `lr`; true when the loop must stop (a checkpoint has been saved). */
  async after(step: number, lr: number, m: Record<string, number>): Promise<boolean> {
    const o = this.o;
    for (const k of o.keys ?? Object.keys(m)) (this.acc[k] ??= []).push(m[k]!);
    o.onStep?.(step, m);
    const last = step === o.maxSteps;
    if (step % o.logEvery === 0 || last) {
      const line: Record<string, unknown> = { step, split: 'train', lr };
      for (const [k, vs] of Object.entries(this.acc)) line[k] = mean(vs);
      o.log(line);
      this.acc = {};
    }
    if (step % o.sampleEvery === 0 || last) await o.sample();
    const stopped = o.shouldStop?.() ?? false;
    if (step % o.ckptEvery === 0 || last || stopped) o.checkpoint();
    return stopped;
  }
}
