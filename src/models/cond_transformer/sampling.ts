// A transformer's sampling settings for one request: what the caller gave, then the model's
// recommended settings (config latentkit.sampling, measured on held-out data and recorded in
// its README), then the built-in defaults. Shared by `sample`, `edit`, the server and the page.
import { checkSamplingOptions } from '../../sample/filtering.ts';
import type { Net2Net } from './load.ts';

export interface SamplingFlags {
  temperature?: number;
  /** 0 = off */
  topK?: number;
  /** 1 = off */
  topP?: number;
  greedy?: boolean;
  /** 0 = off */
  guidance?: number;
  steps?: number;
  choiceTemperature?: number;
}

/**
 * The sampling settings of a request: each flag given wins, then the model's recommended
 * settings (config latentkit.sampling), then the built-in defaults (T 1, no filtering, no
 * guidance, 12 MaskGIT passes, τ 4.5). `fromModel` names the settings the model supplied.
 */
export function samplingSettings(m: Net2Net, f: SamplingFlags): { sampling: SamplingFlags & { topK?: number; topP?: number; guidance?: number }; fromModel: string[] } {
  const d = m.config.sampling ?? {};
  const fromModel: string[] = [];
  const pick = <T>(flag: T | undefined, model: T | null | undefined, name: string): T | undefined => {
    if (flag !== undefined) return flag;
    if (model !== undefined && model !== null) {
      fromModel.push(`${name} ${model}`);
      return model;
    }
    return undefined;
  };
  const topK = pick(f.topK, d.top_k, 'top-k');
  const topP = pick(f.topP, d.top_p, 'top-p');
  if (topP !== undefined && !(topP > 0 && topP <= 1)) throw new Error(`top-p must be in (0, 1], got ${topP}`);
  const guidance = pick(f.guidance, m.config.null_class ? d.guidance : null, 'cfg');
  const sampling = {
    temperature: pick(f.temperature, d.temperature, 'temperature'),
    topK: topK ? topK : undefined,
    topP: topP !== undefined && topP < 1 ? topP : undefined,
    greedy: f.greedy,
    guidance: guidance ? guidance : undefined,
    steps: m.isMaskGit ? (pick(f.steps, d.steps, 'steps') ?? 12) : undefined,
    choiceTemperature: m.isMaskGit ? pick(f.choiceTemperature, d.choice_temperature, 'choice-temperature') : undefined,
  };
  checkSamplingOptions(sampling, m.isMaskGit ? m.config.first_stage.n_embed : m.config.transformer.vocab_size);
  return { sampling, fromModel };
}
