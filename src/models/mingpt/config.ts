// taming's GPT config (taming/modules/transformer/mingpt.py GPT.__init__ arguments), read
// from `transformer_config.params` of a Net2NetTransformer YAML; defaults are taming's.

export interface GPTConfig {
  vocab_size: number;
  block_size: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
  embd_pdrop: number;
  resid_pdrop: number;
  attn_pdrop: number;
  /** The first n_unmasked positions attend to each other without the causal mask. */
  n_unmasked: number;
}

const GPT_DEFAULTS = { n_layer: 12, n_head: 8, n_embd: 256, embd_pdrop: 0, resid_pdrop: 0, attn_pdrop: 0, n_unmasked: 0 };

function posInt(v: unknown, key: string, source: string): number {
  if (!Number.isInteger(v) || (v as number) <= 0) throw new Error(`${source}: '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

function prob(v: unknown, key: string, source: string): number {
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw new Error(`${source}: '${key}' must be a probability in [0, 1), got ${JSON.stringify(v)}`);
  return v;
}

/** Accepts `{target, params}` or the params themselves. */
export function parseGPTConfig(obj: unknown, source = 'transformer_config'): GPTConfig {
  let p = obj as Record<string, unknown> | null;
  if (p && typeof p === 'object' && p.params && typeof p.params === 'object') p = p.params as Record<string, unknown>;
  if (!p || typeof p !== 'object') throw new Error(`${source}: expected the GPT's params (vocab_size, block_size, …)`);
  const c = { ...GPT_DEFAULTS, ...p } as Record<string, unknown>;
  const cfg: GPTConfig = {
    vocab_size: posInt(c.vocab_size, 'vocab_size', source),
    block_size: posInt(c.block_size, 'block_size', source),
    n_layer: posInt(c.n_layer, 'n_layer', source),
    n_head: posInt(c.n_head, 'n_head', source),
    n_embd: posInt(c.n_embd, 'n_embd', source),
    embd_pdrop: prob(c.embd_pdrop, 'embd_pdrop', source),
    resid_pdrop: prob(c.resid_pdrop, 'resid_pdrop', source),
    attn_pdrop: prob(c.attn_pdrop, 'attn_pdrop', source),
    n_unmasked: c.n_unmasked as number,
  };
  if (!Number.isInteger(cfg.n_unmasked) || cfg.n_unmasked < 0 || cfg.n_unmasked > cfg.block_size) {
    throw new Error(`${source}: 'n_unmasked' must be an integer in [0, block_size], got ${JSON.stringify(c.n_unmasked)}`);
  }
  if (cfg.n_embd % cfg.n_head !== 0) throw new Error(`${source}: n_embd ${cfg.n_embd} is not divisible by n_head ${cfg.n_head}`);
  return cfg;
}

/** Parameter count of the GPT (without the attention-mask buffers). */
export function gptParamCount(c: GPTConfig): number {
  const C = c.n_embd;
  const perLayer = 4 * C + 4 * (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
  return c.vocab_size * C + c.block_size * C + c.n_layer * perLayer + 2 * C + c.vocab_size * C;
}
