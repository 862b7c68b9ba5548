// Size limits shared by the CLI and the server: the largest image latentkit makes or reads on
// request (the CLI's --size, the server's ?size= and its pixel limit).

/** Longest side, in pixels, of an image a command or request may ask for. */
export const MAX_IMAGE_SIDE = 4096;
/** Pixels in the largest image read or made (MAX_IMAGE_SIDE²). */
export const MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE;
