// latentkit command line.
import { Command } from 'commander';
import { registerVqganCommands } from './vqgan.ts';
import { registerTrainCommands } from './train.ts';
import { registerGptCommands } from './gpt.ts';
import { registerServeCommand } from './serve.ts';
import { registerDistillCommands } from './distill.ts';
import { registerEditCommand } from './edit.ts';

const program = new Command();
program
  .name('latentkit')
  .description('VQGAN and latent autoencoders in TypeScript on ONNX Runtime')
  .version('0.1.0')
  .showHelpAfterError();
registerVqganCommands(program);
registerTrainCommands(program);
registerGptCommands(program);
registerServeCommand(program);
registerDistillCommands(program);
registerEditCommand(program);

// --help marks required options (commander lists them like optional ones)
for (const cmd of program.commands) for (const opt of cmd.options) if (opt.mandatory) opt.description = `${opt.description} (required)`;

await program.parseAsync(process.argv);
