"""Reference PyTorch reimplementation of taming-transformers' GPT and its samplers
(taming/modules/transformer/mingpt.py: CausalSelfAttention, Block, GPT, forward_with_past,
sample_with_past; taming/models/cond_transformer.py: Net2NetTransformer's forward/loss),
written for latentkit's fixtures and benchmarks. Run with Debian's python3-torch.

Module and parameter names are taming's, so `state_dict()` keys are those of a real
checkpoint's `transformer.*` part, including the registered `blocks.N.attn.mask` buffers.

Facts reproduced here:
  * pre-LN blocks: x + attn(ln1(x)), then x + mlp(ln2(x)); mlp = Linear(C,4C), GELU (erf),
    Linear(4C,C), Dropout; head has no bias; pos_emb is a zero-initialised Parameter.
  * the causal mask is tril(block, block) with mask[:n_unmasked, :n_unmasked] = 1, filled
    with -inf before the softmax; with a past (KV cache) no mask is applied at all.
  * forward_with_past concatenates the whole list of past presents (torch.cat(past, -2)) on
    every call; each present is stack((k, v)) of the new tokens: [2, B, nh, T, hs].
  * sample_with_past only filters when top_k is given (top-p alone is silently ignored);
    greedy is topk(probs, 1).
  * Net2Net: logits = GPT(cat(c, a)[:, :-1])[:, len(c)-1:], cross-entropy against the clean
    codes z; pkeep replaces codes by uniform random ones in the input only.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size, attn_pdrop=0.0, resid_pdrop=0.0, n_unmasked=0):
        super().__init__()
        assert n_embd % n_head == 0
        self.key = nn.Linear(n_embd, n_embd)
        self.query = nn.Linear(n_embd, n_embd)
        self.value = nn.Linear(n_embd, n_embd)
        self.attn_drop = nn.Dropout(attn_pdrop)
        self.resid_drop = nn.Dropout(resid_pdrop)
        self.proj = nn.Linear(n_embd, n_embd)
        m = torch.tril(torch.ones(block_size, block_size))
        m[:n_unmasked, :n_unmasked] = 1
        self.register_buffer("mask", m.view(1, 1, block_size, block_size))
        self.n_head = n_head

    def forward(self, x, layer_past=None):
        B, T, C = x.shape
        nh = self.n_head

        def heads(t):
            return t.view(B, T, nh, C // nh).transpose(1, 2)  # [B, nh, T, hs]

        k, q, v = heads(self.key(x)), heads(self.query(x)), heads(self.value(x))
        present = torch.stack((k, v))
        if layer_past is not None:
            k = torch.cat((layer_past[0], k), dim=-2)
            v = torch.cat((layer_past[1], v), dim=-2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if layer_past is None:
            att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y)), present


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size, attn_pdrop=0.0, resid_pdrop=0.0, n_unmasked=0):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, attn_pdrop, resid_pdrop, n_unmasked)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd), nn.Dropout(resid_pdrop))

    def forward(self, x, layer_past=None, return_present=False):
        a, present = self.attn(self.ln1(x), layer_past=layer_past)
        x = x + a
        x = x + self.mlp(self.ln2(x))
        if layer_past is not None or return_present:
            return x, present
        return x


class GPT(nn.Module):
    def __init__(self, vocab_size, block_size, n_layer=12, n_head=8, n_embd=256,
                 embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0, n_unmasked=0):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, block_size, n_embd))
        self.drop = nn.Dropout(embd_pdrop)
        self.blocks = nn.Sequential(*[Block(n_embd, n_head, block_size, attn_pdrop, resid_pdrop, n_unmasked) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.block_size = block_size
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            m.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.LayerNorm):
            m.bias.data.zero_()
            m.weight.data.fill_(1.0)

    def forward(self, idx, targets=None):
        x = self.tok_emb(idx)
        t = x.shape[1]
        assert t <= self.block_size
        x = self.drop(x + self.pos_emb[:, :t, :])
        x = self.blocks(x)
        logits = self.head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    def forward_with_past(self, idx, past=None, past_length=None):
        x = self.tok_emb(idx)
        if past is not None:
            past = torch.cat(past, dim=-2)  # n_layer, 2, B, nh, past_length, hs
            pos = self.pos_emb[:, past_length, :]
        else:
            pos = self.pos_emb[:, : x.shape[1], :]
        x = self.drop(x + pos)
        presents = []
        for i, block in enumerate(self.blocks):
            x, present = block(x, layer_past=past[i, ...] if past is not None else None, return_present=True)
            presents.append(present)
        logits = self.head(self.ln_f(x))
        return logits, None, torch.stack(presents)


@torch.no_grad()
def sample_with_past(x, model, steps, temperature=1.0, sample_logits=True, top_k=None):
    """taming's KV-cached sampler (top-p needs transformers' filter and is left out here)."""
    sample = x
    cond_len = x.shape[1]
    past = None
    for n in range(steps):
        logits, _, present = model.forward_with_past(x, past=past, past_length=(n + cond_len - 1))
        past = [present] if past is None else past + [present]
        logits = logits[:, -1, :] / temperature
        if top_k is not None:
            v, _ = torch.topk(logits, top_k)
            logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
        probs = F.softmax(logits, dim=-1)
        if not sample_logits:
            _, x = torch.topk(probs, k=1, dim=-1)
        else:
            x = torch.multinomial(probs, num_samples=1)
        sample = torch.cat((sample, x), dim=1)
    return sample[:, cond_len:]


@torch.no_grad()
def sample_full_recompute(x, model, steps, temperature=1.0):
    """taming's Net2NetTransformer.sample loop (no cache): one full forward per token, greedy."""
    for _ in range(steps):
        logits, _ = model(x)
        probs = F.softmax(logits[:, -1, :] / temperature, dim=-1)
        _, ix = torch.topk(probs, k=1, dim=-1)
        x = torch.cat((x, ix), dim=1)
    return x


def net2net_loss(model, c_indices, z_indices, a_indices=None):
    """Net2NetTransformer.forward + shared_step with precomputed codes."""
    a = z_indices if a_indices is None else a_indices
    cz = torch.cat((c_indices, a), dim=1)
    logits, _ = model(cz[:, :-1])
    logits = logits[:, c_indices.shape[1] - 1:]
    return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), z_indices.reshape(-1))


def decay_groups(model):
    """configure_optimizers: weight decay on Linear weights only."""
    decay, no_decay = set(), set()
    for mn, m in model.named_modules():
        for pn, _ in m.named_parameters(recurse=False):
            fpn = "%s.%s" % (mn, pn) if mn else pn
            if pn.endswith("bias"):
                no_decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, nn.Linear):
                decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, (nn.LayerNorm, nn.Embedding)):
                no_decay.add(fpn)
    no_decay.add("pos_emb")
    return sorted(decay), sorted(no_decay)
