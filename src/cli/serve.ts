// `latentkit serve`: the HTTP API (src/serve/) over the bundled emoji models or any the user
// passes. The server modules load inside the action so `latentkit --help` stays fast.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CliError, action, parseIntOpt } from './util.ts';

/** The models that ship with the checkout / package, in the order the demo lists them. */
const packageRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function bundledModels(): string[] {
  const root = path.join(packageRoot, 'models');
  return ['emoji-f4', 'emoji-class', 'emoji-sketch', 'emoji-sketch-maskgit', 'emoji-kl-f4'].map((d) => path.join(root, d)).filter((d) => fs.existsSync(path.join(d, 'model.safetensors')));
}

interface ServeOpts { web?: boolean; model: string[]; runs: string[]; usageData: string; host: string; port: string; threads?: string; concurrency: string; queueDepth: string; maxBodyMb: string; maxPixels: string; requestTimeoutS: string }

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('HTTP API (reconstruct, encode, decode, sample, models, health) over VQGANs, transformers, and Stable Diffusion VAEs / TAESD (latents)')
    .option('-m, --model <dir|file|name=path>', 'a model directory or checkpoint (repeatable; default: the bundled emoji models)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--runs <dir>', 'training runs for the run viewer: a run directory (with metrics.jsonl) or a folder of them (repeatable; default: ./runs if present, and the bundled models when they are served)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--usage-data <emoji|dir>', "images the codebook view counts code usage over: 'emoji' or a folder", 'emoji')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('-p, --port <port>', 'port (0: any free port)', '8080')
    .option('-t, --threads <n>', 'CPU threads per model run (default: all cores)')
    .option('--concurrency <n>', 'model runs at once', '1')
    .option('--queue-depth <n>', 'requests that may wait; more are answered 503 with Retry-After', '16')
    .option('--max-body-mb <n>', 'largest request body in MB', '8')
    .option('--request-timeout-s <n>', 'longest time to receive a request (headers and body); slower uploads get 408', '60')
    .option('--no-web', 'do not serve the web page (web/dist) at /')
    .option('--max-pixels <n>', 'largest image in pixels (read from its header before decoding)', String(4096 * 4096))
    .action(
      action(async (o: ServeOpts) => {
        const port = Number(o.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`--port must be 0–65535, got '${o.port}'`);
        const specs = o.model.length ? o.model : bundledModels();
        if (!specs.length) throw new CliError('no models: pass --model <dir|file> (the bundled emoji models are not in this install)');
        const { loadServedModel } = await import('../serve/models.ts');
        const { createServer } = await import('../serve/server.ts');
        const session = { threads: o.threads ? parseIntOpt(o.threads, '--threads') : undefined };
        const models = specs.map((s) => loadServedModel(s, session));
        const built = path.join(packageRoot, 'web', 'dist');
        const webRoot = o.web !== false && fs.existsSync(path.join(built, 'index.html')) ? built : undefined;
        const { app } = await createServer({
          models,
          concurrency: parseIntOpt(o.concurrency, '--concurrency'),
          queueDepth: Number(o.queueDepth),
          maxBodyBytes: Math.round(Number(o.maxBodyMb) * 1024 * 1024),
          maxPixels: parseIntOpt(o.maxPixels, '--max-pixels'),
          requestTimeoutMs: parseIntOpt(o.requestTimeoutS, '--request-timeout-s') * 1000,
          webRoot,
          runs: o.runs.length ? o.runs : [...(fs.existsSync('runs') ? ['runs'] : []), ...(o.model.length ? [] : specs)],
          usageData: o.usageData,
        });
        let closing = false;
        const shutdown = (sig: string) => {
          if (closing) return;
          closing = true;
          console.error(`${sig}: finishing in-flight requests, then exiting`);
          app.close().then(
            () => process.exit(0),
            () => process.exit(1),
          );
        };
        process.on('SIGTERM', () => shutdown('SIGTERM'));
        process.on('SIGINT', () => shutdown('SIGINT'));
        const address = await app.listen({ host: o.host, port });
        for (const m of models) console.error(`model ${m.name} (${m.kind}) from ${m.source}`);
        console.error(`latentkit serve: listening on ${address}  (${webRoot ? `open ${address}/ for the demo page; ` : ''}API: ${address}/api/models)`);
      }),
    );
}
