/* Test helper: runs C ENet's range coder and CRC-32 over framed records from stdin.
 *
 * Usage: codec_helper MODE, MODE one of
 *   compress    compress each record as one buffer
 *   compress3   compress each record split into three non-empty buffers (when >= 3 bytes)
 *   decompress  decompress each record
 *   crc         enet_crc32 of each record split into three buffers
 *
 * Input records:  u32 limit (big-endian), u32 length (big-endian), length bytes.
 * Output records: u32 length (big-endian), length bytes. For compress and decompress the
 * bytes are the output (length 0 when the C function returned 0); for crc they are the 4
 * bytes of the value enet_crc32 returned, exactly as it lies in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <enet/enet.h>

static int read_exact(void *buf, size_t len)
{
    return fread(buf, 1, len, stdin) == len;
}

static unsigned long read_u32(int *ok)
{
    unsigned char b[4];
    if (!read_exact(b, 4)) {
        *ok = 0;
        return 0;
    }
    *ok = 1;
    return ((unsigned long) b[0] << 24) | ((unsigned long) b[1] << 16) | ((unsigned long) b[2] << 8) | b[3];
}

static void write_record(const void *data, size_t len)
{
    unsigned char b[4] = { (unsigned char) (len >> 24), (unsigned char) (len >> 16),
                           (unsigned char) (len >> 8), (unsigned char) len };
    fwrite(b, 1, 4, stdout);
    if (len > 0)
        fwrite(data, 1, len, stdout);
}

/* Splits data into up to three non-empty buffers; returns how many. */
static size_t split3(unsigned char *data, size_t len, ENetBuffer *buffers)
{
    if (len < 3) {
        buffers[0].data = data;
        buffers[0].dataLength = len;
        return 1;
    }
    size_t a = len / 3, b = (2 * len) / 3;
    buffers[0].data = data;
    buffers[0].dataLength = a;
    buffers[1].data = data + a;
    buffers[1].dataLength = b - a;
    buffers[2].data = data + b;
    buffers[2].dataLength = len - b;
    return 3;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s compress|compress3|decompress|crc\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    if (enet_initialize() != 0) {
        fprintf(stderr, "enet_initialize failed\n");
        return 1;
    }
    void *coder = enet_range_coder_create();
    if (coder == NULL)
        return 1;
    for (;;) {
        int ok;
        unsigned long limit = read_u32(&ok);
        if (!ok)
            break;
        unsigned long len = read_u32(&ok);
        if (!ok)
            return 1;
        unsigned char *in = malloc(len + 1);
        unsigned char *out = malloc(limit + 1);
        if (in == NULL || out == NULL || !read_exact(in, len))
            return 1;
        ENetBuffer buffers[3];
        if (strcmp(mode, "compress") == 0 || strcmp(mode, "compress3") == 0) {
            size_t count = 1;
            buffers[0].data = in;
            buffers[0].dataLength = len;
            if (strcmp(mode, "compress3") == 0)
                count = split3(in, len, buffers);
            size_t n = enet_range_coder_compress(coder, buffers, count, len, out, limit);
            write_record(out, n);
        } else if (strcmp(mode, "decompress") == 0) {
            size_t n = enet_range_coder_decompress(coder, in, len, out, limit);
            write_record(out, n);
        } else if (strcmp(mode, "crc") == 0) {
            size_t count = split3(in, len, buffers);
            enet_uint32 crc = enet_crc32(buffers, count);
            write_record(&crc, 4);
        } else {
            fprintf(stderr, "unknown mode %s\n", mode);
            return 2;
        }
        free(in);
        free(out);
    }
    fflush(stdout);
    enet_range_coder_destroy(coder);
    enet_deinitialize();
    return 0;
}
