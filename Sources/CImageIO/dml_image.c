// PNG through libpng's simplified API; JPEG through libjpeg with an error manager that longjmps instead of exiting.
#include "dml_image.h"

#include <png.h>
#include <jpeglib.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_error(char *error, size_t size, const char *message) {
    if (error && size > 0) {
        snprintf(error, size, "%s", message);
    }
}

static int decode_png(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                      char *error, size_t error_size) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, size)) {
        set_error(error, error_size, image.message);
        return 1;
    }
    if ((size_t)image.width * image.height > max_pixels) {
        png_image_free(&image);
        set_error(error, error_size, "image is larger than the allowed pixel count");
        return 1;
    }
    image.format = PNG_FORMAT_RGB;  // alpha is composited onto black by libpng; grey is expanded
    uint8_t *buffer = malloc(PNG_IMAGE_SIZE(image));
    if (!buffer) {
        png_image_free(&image);
        set_error(error, error_size, "out of memory");
        return 1;
    }
    if (!png_image_finish_read(&image, NULL, buffer, 0, NULL)) {
        set_error(error, error_size, image.message);
        free(buffer);
        png_image_free(&image);
        return 1;
    }
    *pixels = buffer;
    *width = (int)image.width;
    *height = (int)image.height;
    return 0;
}

struct jpeg_failure {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void jpeg_fail(j_common_ptr info) {
    struct jpeg_failure *failure = (struct jpeg_failure *)info->err;
    (*info->err->format_message)(info, failure->message);
    longjmp(failure->jump, 1);
}

// Keeps libjpeg quiet on stderr but still counts warnings (a truncated file is one).
static void jpeg_quiet(j_common_ptr info, int level) {
    if (level < 0) info->err->num_warnings++;
}

static int decode_jpeg(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                       char *error, size_t error_size) {
    struct jpeg_decompress_struct info;
    struct jpeg_failure failure;
    uint8_t *volatile buffer = NULL;
    info.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = jpeg_fail;
    failure.manager.emit_message = jpeg_quiet;
    if (setjmp(failure.jump)) {
        set_error(error, error_size, failure.message);
        jpeg_destroy_decompress(&info);
        free(buffer);
        return 1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    info.out_color_space = JCS_RGB;
    jpeg_start_decompress(&info);
    if ((size_t)info.output_width * info.output_height > max_pixels) {
        jpeg_destroy_decompress(&info);
        set_error(error, error_size, "image is larger than the allowed pixel count");
        return 1;
    }
    size_t stride = (size_t)info.output_width * 3;
    buffer = malloc(stride * info.output_height);
    if (!buffer) {
        jpeg_destroy_decompress(&info);
        set_error(error, error_size, "out of memory");
        return 1;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = buffer + stride * info.output_scanline;
        jpeg_read_scanlines(&info, &row, 1);
    }
    // A truncated file makes libjpeg pad with grey and warn; treat that as an error.
    if (failure.manager.num_warnings > 0) {
        char message[JMSG_LENGTH_MAX];
        (*failure.manager.format_message)((j_common_ptr)&info, message);
        jpeg_destroy_decompress(&info);
        free(buffer);
        set_error(error, error_size, message);
        return 1;
    }
    jpeg_finish_decompress(&info);
    *width = (int)info.output_width;
    *height = (int)info.output_height;
    jpeg_destroy_decompress(&info);
    *pixels = buffer;
    return 0;
}

int dml_image_decode(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                     char *error, size_t error_size) {
    if (!data || !pixels || !width || !height) {
        set_error(error, error_size, "null argument");
        return 1;
    }
    *pixels = NULL;
    static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (size >= 8 && memcmp(data, png_signature, 8) == 0) {
        return decode_png(data, size, max_pixels, pixels, width, height, error, error_size);
    }
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
        return decode_jpeg(data, size, max_pixels, pixels, width, height, error, error_size);
    }
    set_error(error, error_size, "not a PNG or JPEG file (unknown signature)");
    return 1;
}

int dml_image_encode_png(const uint8_t *pixels, int width, int height, uint8_t **data, size_t *size, char *error,
                         size_t error_size) {
    if (!pixels || !data || !size || width <= 0 || height <= 0) {
        set_error(error, error_size, "bad image arguments");
        return 1;
    }
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = PNG_FORMAT_RGB;
    png_alloc_size_t needed = 0;
    if (!png_image_write_to_memory(&image, NULL, &needed, 0, pixels, 0, NULL)) {
        set_error(error, error_size, image.message);
        return 1;
    }
    uint8_t *buffer = malloc(needed);
    if (!buffer) {
        set_error(error, error_size, "out of memory");
        return 1;
    }
    if (!png_image_write_to_memory(&image, buffer, &needed, 0, pixels, 0, NULL)) {
        set_error(error, error_size, image.message);
        free(buffer);
        return 1;
    }
    *data = buffer;
    *size = needed;
    return 0;
}

void dml_image_free(void *buffer) { free(buffer); }
