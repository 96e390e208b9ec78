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
    // 16-bit files: libpng's simplified API takes 16-bit data without a gAMA chunk for linear light and would
    // gamma-encode it on the way to 8 bits; read the 16-bit values as they are and keep the high byte (as Pillow
    // does). 8-bit: alpha is composited onto black by libpng; grey and palettes are expanded.
    int sixteen = (image.format & PNG_FORMAT_FLAG_LINEAR) != 0;
    image.format = sixteen ? PNG_FORMAT_LINEAR_RGB : PNG_FORMAT_RGB;
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
    if (sixteen) {  // in place: 6 bytes in -> 3 bytes out, front to back
        const uint16_t *wide = (const uint16_t *)buffer;
        size_t n = (size_t)image.width * image.height * 3;
        for (size_t i = 0; i < n; i++) buffer[i] = (uint8_t)(wide[i] >> 8);
    }
    *pixels = buffer;
    *width = (int)image.width;
    *height = (int)image.height;
    return DML_IMAGE_OK;
}

// ---- EXIF orientation ------------------------------------------------------------------------------------------

/* The EXIF Orientation tag (0x0112) of an APP1 "Exif" payload: 1..8, or 1 when absent or unreadable. Every read is
 * bounds-checked: the payload is untrusted. */
static int exif_orientation(const uint8_t *d, size_t n) {
    if (n < 6 + 8 || memcmp(d, "Exif\0\0", 6) != 0) return 1;
    const uint8_t *t = d + 6;
    size_t len = n - 6;
    int little;
    if (t[0] == 'I' && t[1] == 'I') {
        little = 1;
    } else if (t[0] == 'M' && t[1] == 'M') {
        little = 0;
    } else {
        return 1;
    }
#define RD16(p) (little ? (uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 : (uint32_t)(p)[1] | (uint32_t)(p)[0] << 8)
#define RD32(p) (little ? RD16(p) | RD16((p) + 2) << 16 : RD16((p) + 2) | RD16(p) << 16)
    uint32_t ifd = RD32(t + 4);
    if (ifd > len || len - ifd < 2) return 1;
    uint32_t count = RD16(t + ifd);
    for (uint32_t i = 0; i < count; i++) {
        size_t entry = (size_t)ifd + 2 + 12 * (size_t)i;
        if (entry + 12 > len) break;
        if (RD16(t + entry) == 0x0112 && RD16(t + entry + 2) == 3) {  // SHORT, value in the first 2 bytes of the field
            uint32_t value = RD16(t + entry + 8);
            return value >= 1 && value <= 8 ? (int)value : 1;
        }
    }
#undef RD16
#undef RD32
    return 1;
}

/* Turns RGB pixels stored in the file's frame into the displayed frame of an EXIF orientation (2..8), as
 * Pillow's ImageOps.exif_transpose does. Returns a new buffer (the old one is freed), or NULL when out of memory. */
static uint8_t *apply_orientation(uint8_t *src, int *width, int *height, int orientation) {
    size_t w = (size_t)*width, h = (size_t)*height;
    int swap = orientation >= 5;
    size_t ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *out = malloc(w * h * 3);
    if (!out) return NULL;
    for (size_t oy = 0; oy < oh; oy++) {
        for (size_t ox = 0; ox < ow; ox++) {
            size_t sx, sy;
            switch (orientation) {
            case 2: sx = w - 1 - ox; sy = oy; break;               // mirrored left-right
            case 3: sx = w - 1 - ox; sy = h - 1 - oy; break;       // rotated 180
            case 4: sx = ox; sy = h - 1 - oy; break;               // mirrored top-bottom
            case 5: sx = oy; sy = ox; break;                       // transposed
            case 6: sx = oy; sy = h - 1 - ox; break;               // displayed turned 90 degrees clockwise
            case 7: sx = w - 1 - oy; sy = h - 1 - ox; break;       // transversed
            case 8: sx = w - 1 - oy; sy = ox; break;               // displayed turned 90 degrees counter-clockwise
            default: sx = ox; sy = oy; break;
            }
            memcpy(out + (oy * ow + ox) * 3, src + (sy * w + sx) * 3, 3);
        }
    }
    free(src);
    *width = (int)ow;
    *height = (int)oh;
    return out;
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
    jpeg_save_markers(&info, JPEG_APP0 + 1, 0xFFFF);  // APP1: EXIF, for the orientation
    jpeg_read_header(&info, TRUE);
    int orientation = 1;
    for (jpeg_saved_marker_ptr m = info.marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1) {
            int o = exif_orientation(m->data, m->data_length);
            if (o != 1) {
                orientation = o;
                break;
            }
        }
    }
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
    // CMYK and YCCK (print workflows) come out as CMYK and are converted below; everything else as RGB.
    int cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
    info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&info);
    size_t channels = cmyk ? 4 : 3;
    size_t stride = (size_t)info.output_width * channels;
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
    if (cmyk) {
        // Adobe's files (the usual CMYK JPEG) store the inks inverted. RGB as Pillow converts it:
        // each channel (255 - K) * (255 - C) / 255, rounded; in place, 4 bytes in -> 3 bytes out.
        int inverted = info.saw_Adobe_marker;
        size_t n = (size_t)info.output_width * info.output_height;
        for (size_t i = 0; i < n; i++) {
            uint8_t *p = buffer + 4 * i;
            unsigned c = p[0], m = p[1], y = p[2], k = p[3];
            if (inverted) { c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k; }
            unsigned nk = 255 - k, t;
            uint8_t *q = buffer + 3 * i;
            t = c * nk + 128; q[0] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
            t = m * nk + 128; q[1] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
            t = y * nk + 128; q[2] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        }
    }
    // A truncated file makes libjpeg pad with grey and warn; treat that as an error.
    if (failure.manager.num_warnings > 0) {
        (*failure.manager.format_message)((j_common_ptr)&info, failure.message);
        failure.status = DML_IMAGE_CORRUPT;
        longjmp(failure.jump, 1);
    }
    jpeg_finish_decompress(&info);
    int w = (int)info.output_width, h = (int)info.output_height;
    jpeg_destroy_decompress(&info);
    uint8_t *result = buffer;
    if (orientation != 1) {
        result = apply_orientation(buffer, &w, &h, orientation);
        if (!result) {
            free(buffer);
            set_error(error, error_size, "out of memory");
            return DML_IMAGE_TOO_LARGE;
        }
    }
    *width = w;
    *height = h;
    *pixels = result;
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
