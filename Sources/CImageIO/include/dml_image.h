/*
 * dml_image.h — PNG and JPEG decoding to 8-bit RGB, and PNG encoding, over Debian's libpng and libjpeg-turbo.
 * Every call returns 0 on success; on failure, a message is written to `error` (NUL-terminated, truncated).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Results of dml_image_decode. */
#define DML_IMAGE_OK 0
#define DML_IMAGE_CORRUPT 1
#define DML_IMAGE_TOO_LARGE 2

/** Decodes a PNG or JPEG (detected from its signature) into malloc'ed RGB bytes, row-major, 3 per pixel, in the
 *  displayed frame: a JPEG's EXIF orientation is applied (width and height swap for 5..8). CMYK and YCCK JPEGs are
 *  converted to RGB as Pillow does (Adobe-inverted inks honoured); 16-bit, palette, grey and alpha PNGs become
 *  8-bit RGB through libpng's simplified API.
 *  Free the pixels with dml_image_free. Returns DML_IMAGE_TOO_LARGE, before allocating anything the size of the
 *  image, when the header declares more than max_pixels pixels or more than the file's bytes can encode (at least
 *  one bit per 8x8 JPEG block, at most ~1032:1 deflate for PNG); when libjpeg would need more than
 *  6 * max_pixels + 64 MiB (its max_memory_to_use); or for more than 256 progressive JPEG scans.
 *  Any other failure is DML_IMAGE_CORRUPT. */
int dml_image_decode(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                     char *error, size_t error_size);

/** Encodes RGB bytes (row-major, 3 per pixel) as PNG into a malloc'ed buffer. Free it with dml_image_free. */
int dml_image_encode_png(const uint8_t *pixels, int width, int height, uint8_t **data, size_t *size, char *error,
                         size_t error_size);

void dml_image_free(void *buffer);

#ifdef __cplusplus
}
#endif
