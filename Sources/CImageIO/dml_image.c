// PNG through libpng's simplified API; JPEG through libjpeg with an error manager that longjmps instead of exiting.
#include "dml_image.h"

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_error(char *error, size_t size, const char *message) {
    if (error && size > 0) {
        snprintf(error, size, "%s", message);
    }
}

// zlib cannot beat about 1032:1, and a PNG row takes at least a filter byte and one bit per pixel: a file whose
// header promises more raw bytes than 1100 times its own size cannot hold that image.
static const size_t png_max_ratio = 1100;

static int decode_png(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                      char *error, size_t error_size) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, size)) {
        set_error(error, error_size, image.message);
        return DML_IMAGE_CORRUPT;
    }
    // Checked on the IHDR values, before anything the size of the image is allocated.
    char message[200];
    if ((size_t)image.width * image.height > max_pixels) {
        snprintf(message, sizeof message, "image is %ux%u pixels, more than the limit of %zu pixels", image.width,
                 image.height, max_pixels);
        png_image_free(&image);
        set_error(error, error_size, message);
        return DML_IMAGE_TOO_LARGE;
    }
    if ((size_t)image.height * (1 + ((size_t)image.width + 7) / 8) > png_max_ratio * size) {
        snprintf(message, sizeof message, "the header declares %ux%u pixels, which %zu bytes of PNG cannot hold",
                 image.width, image.height, size);
        png_image_free(&image);
        set_error(error, error_size, message);
        return DML_IMAGE_TOO_LARGE;
    }
    image.format = PNG_FORMAT_RGB;  // alpha is composited onto black by libpng; grey is expanded
    uint8_t *buffer = malloc(PNG_IMAGE_SIZE(image));
    if (!buffer) {
        png_image_free(&image);
        set_error(error, error_size, "out of memory");
        return DML_IMAGE_TOO_LARGE;
    }
    if (!png_image_finish_read(&image, NULL, buffer, 0, NULL)) {
        set_error(error, error_size, image.message);
        free(buffer);
        png_image_free(&image);
        return DML_IMAGE_CORRUPT;
    }
    *pixels = buffer;
    *width = (int)image.width;
    *height = (int)image.height;
    return DML_IMAGE_OK;
}

struct jpeg_failure {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int status;  // what a longjmp reports: corrupt, or too large (memory limit, scan limit)
};

static void jpeg_fail(j_common_ptr info) {
    struct jpeg_failure *failure = (struct jpeg_failure *)info->err;
    (*info->err->format_message)(info, failure->message);
    // libjpeg's own "out of memory" codes mean the memory limit set below was reached.
    int code = info->err->msg_code;
    failure->status = (code == JERR_OUT_OF_MEMORY || code == JERR_NO_BACKING_STORE) ? DML_IMAGE_TOO_LARGE : DML_IMAGE_CORRUPT;
    longjmp(failure->jump, 1);
}

// Keeps libjpeg quiet on stderr but still counts warnings (a truncated file is one).
static void jpeg_quiet(j_common_ptr info, int level) {
    if (level < 0) info->err->num_warnings++;
}

// Each progressive scan is another pass over the whole image's coefficients: a small file with thousands of scans
// costs minutes. Real encoders write about ten.
#define DML_JPEG_MAX_SCANS 256

struct jpeg_scan_limit {
    struct jpeg_progress_mgr manager;
    struct jpeg_failure *failure;
};

static void jpeg_count_scans(j_common_ptr info) {
    j_decompress_ptr decompress = (j_decompress_ptr)info;
    if (decompress->input_scan_number > DML_JPEG_MAX_SCANS) {
        struct jpeg_failure *failure = (struct jpeg_failure *)info->err;
        snprintf(failure->message, sizeof failure->message, "more than %d progressive scans", DML_JPEG_MAX_SCANS);
        failure->status = DML_IMAGE_TOO_LARGE;
        longjmp(failure->jump, 1);
    }
}

static int decode_jpeg(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                       char *error, size_t error_size) {
    struct jpeg_decompress_struct info;
    struct jpeg_failure failure;
    struct jpeg_scan_limit scans;
    uint8_t *volatile buffer = NULL;
    info.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = jpeg_fail;
    failure.manager.emit_message = jpeg_quiet;
    failure.status = DML_IMAGE_CORRUPT;
    if (setjmp(failure.jump)) {
        set_error(error, error_size, failure.message);
        jpeg_destroy_decompress(&info);
        free(buffer);
        return failure.status;
    }
    jpeg_create_decompress(&info);
    // libjpeg's whole-image buffers (progressive coefficients: 128 bytes per 8x8 block, at most 6 bytes per pixel)
    // and everything else it allocates stay under this; past it libjpeg fails instead of allocating.
    info.mem->max_memory_to_use = (long)(max_pixels * 6 + 64u * 1024 * 1024);
    scans.manager.progress_monitor = jpeg_count_scans;
    scans.failure = &failure;
    info.progress = &scans.manager;
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    // Checked on the frame header, before jpeg_start_decompress allocates anything the size of the image.
    if ((size_t)info.image_width * info.image_height > max_pixels) {
        snprintf(failure.message, sizeof failure.message, "image is %ux%u pixels, more than the limit of %zu pixels",
                 info.image_width, info.image_height, max_pixels);
        failure.status = DML_IMAGE_TOO_LARGE;
        longjmp(failure.jump, 1);
    }
    // Huffman coding spends at least one bit on every 8x8 block of every component (its DC code), so a file of
    // `size` bytes holds at most 8 * size blocks; a header promising more describes data that is not there.
    // (Arithmetic coding has no such floor; the pixel and memory limits still bound it.)
    if (!info.arith_code) {
        size_t blocks = 0;
        for (int c = 0; c < info.num_components; c++) {
            blocks += (size_t)info.comp_info[c].width_in_blocks * info.comp_info[c].height_in_blocks;
        }
        if (blocks > 8 * size) {
            snprintf(failure.message, sizeof failure.message,
                     "the header declares %ux%u pixels (%zu blocks), which %zu bytes of JPEG cannot hold", info.image_width,
                     info.image_height, blocks, size);
            failure.status = DML_IMAGE_TOO_LARGE;
            longjmp(failure.jump, 1);
        }
    }
    info.out_color_space = JCS_RGB;
    jpeg_start_decompress(&info);
    size_t stride = (size_t)info.output_width * 3;
    buffer = malloc(stride * info.output_height);
    if (!buffer) {
        snprintf(failure.message, sizeof failure.message, "out of memory");
        failure.status = DML_IMAGE_TOO_LARGE;
        longjmp(failure.jump, 1);
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = buffer + stride * info.output_scanline;
        jpeg_read_scanlines(&info, &row, 1);
    }
    // A truncated file makes libjpeg pad with grey and warn; treat that as an error.
    if (failure.manager.num_warnings > 0) {
        (*failure.manager.format_message)((j_common_ptr)&info, failure.message);
        failure.status = DML_IMAGE_CORRUPT;
        longjmp(failure.jump, 1);
    }
    jpeg_finish_decompress(&info);
    *width = (int)info.output_width;
    *height = (int)info.output_height;
    jpeg_destroy_decompress(&info);
    *pixels = buffer;
    return DML_IMAGE_OK;
}

int dml_image_decode(const uint8_t *data, size_t size, size_t max_pixels, uint8_t **pixels, int *width, int *height,
                     char *error, size_t error_size) {
    if (!data || !pixels || !width || !height) {
        set_error(error, error_size, "null argument");
        return DML_IMAGE_CORRUPT;
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
    return DML_IMAGE_CORRUPT;
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
