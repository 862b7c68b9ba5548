// Editing an image with a transformer over its codes: the image is encoded by the first stage,
// the cells a mask marks (or that an outpainting canvas leaves uncovered) are regenerated and
// every other code is kept exactly (sample/edit.ts says which cells), then decoded. Shared by
// `latentkit edit` and the server's /edit.
import { HostTensor } from '../../tensor.ts';
import { downFactor } from '../vqgan/config.ts';
import { maskCells, placeOnCanvas, planEdit, resizeNearest, type EditPlan } from '../../sample/edit.ts';
import type { Net2Net, SampleRequest } from './load.ts';

export interface EditRequest extends Omit<SampleRequest, 'init' | 'grid' | 'condGrid'> {
  /** float [3, h, w] in [−1, 1]: the whole canvas (the model's size), or with `at` a smaller image placed on it */
  image: HostTensor<'float32'>;
  /** outpainting: the image's top-left corner on the canvas, in pixels */
  at?: [number, number];
  /** brightness [h, w] (white = repaint); resized (nearest) to the canvas when its size differs */
  mask?: { gray: Uint8Array; height: number; width: number };
}

export interface EditResult {
  plan: EditPlan;
  /** the canvas as encoded ([3, H, W]) and its codes */
  canvas: HostTensor<'float32'>;
  codes: Int32Array;
  /** per cell: 1 = regenerated */
  cells: Uint8Array;
  /** n·Lz codes and the decoded images [n, 3, H, W] (absent when there is nothing to do) */
  tokens?: Int32Array;
  images?: HostTensor<'float32'>;
}

export async function editImage(m: Net2Net, r: EditRequest): Promise<EditResult> {
  const grid = m.grid;
  const f = downFactor(m.config.first_stage);
  const [H, W] = [grid[0] * f, grid[1] * f];
  const [c, h, w] = r.image.shape as [number, number, number];
  const notes: string[] = [];
  let pixels: Float32Array;
  let uncovered: Uint8Array | null = null;
  if (r.at) {
    ({ pixels, uncovered } = placeOnCanvas(r.image.data as Float32Array, c, h, w, [H, W], r.at, f));
    notes.push(`outpainting: the ${w}x${h} image at ${r.at[0]},${r.at[1]} on the ${W}x${H} canvas; ${uncovered.reduce((a, v) => a + v, 0)} cells it does not cover are generated`);
  } else {
    if (h !== H || w !== W) throw new Error(`the image is ${w}x${h}; this model edits ${W}x${H} images (place a smaller one with --at X,Y)`);
    pixels = r.image.data as Float32Array;
  }
  if (!r.mask && !uncovered) throw new Error('nothing marks what to repaint: give a mask (white = repaint) or place the image on the canvas (--at X,Y)');
  const canvas = HostTensor.float32([c, H, W], pixels);
  const { indices } = await m.firstStage.encode(canvas.reshape([1, c, H, W]));
  const codes = Int32Array.from(indices.toArray(), Number);
  const cells = uncovered ?? new Uint8Array(grid[0] * grid[1]);
  if (r.mask) {
    let gray = r.mask.gray;
    if (r.mask.height !== H || r.mask.width !== W) {
      notes.push(`the mask is ${r.mask.width}x${r.mask.height}, the image ${W}x${H}: resized the mask to ${W}x${H} (nearest)`);
      gray = resizeNearest(gray, r.mask.height, r.mask.width, H, W);
    }
    const marked = maskCells(gray, H, W, grid);
    for (let i = 0; i < cells.length; i++) cells[i] = cells[i]! | marked[i]!;
  }
  const plan = planEdit(codes, cells, { autoregressive: !m.isMaskGit, grid });
  plan.notes.unshift(...notes);
  if (plan.kind === 'nothing') return { plan, canvas, codes, cells };
  const tokens = await m.sample({ ...r, init: plan.kind === 'all' ? undefined : plan.init });
  const images = await m.decodeTokens(tokens, r.n);
  return { plan, canvas, codes, cells, tokens, images };
}
