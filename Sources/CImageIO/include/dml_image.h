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

/** Decodes a PNG or JPEG (detected from its signature) into malloc'ed RGB bytes, row-major, 3 per pixel.
 *  Images larger than max_pixels are refused. Free the pixels with dml_image_free. */
int dml_image_decode(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                     char *error, size_t error_size);

/** Encodes RGB bytes (row-major, 3 per pixel) as PNG into a malloc'ed buffer. Free it with dml_image_free. */
int dml_image_encode_png(const uint8_t *pixels, int width, int height, uint8_t **data, size_t *size, char *error,
                         size_t error_size);

void dml_image_free(void *buffer);

#ifdef __cplusplus
}
#endif
