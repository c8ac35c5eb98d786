/* pbscan.h: counting a field's occurrences in protobuf bytes before unpacking them.
 *
 * protobuf-c allocates a struct per repeated sub-message and a string per repeated string,
 * so a few bytes on the wire ("22 00": an empty layer) can cost a hundred bytes of memory.
 * The loader and the snapshot reader count the repeated fields first and refuse absurd
 * counts before protobuf-c allocates anything. Header-only: used by model.c and state.c.
 */
#ifndef SPK_PBSCAN_H
#define SPK_PBSCAN_H

#include <stddef.h>
#include <stdint.h>

static inline int pb_varint(const uint8_t *b, size_t len, size_t *p, uint64_t *v) {
    uint64_t x = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        if (*p >= len) return -1;
        uint8_t c = b[(*p)++];
        x |= (uint64_t)(c & 0x7F) << sh;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Occurrences of top-level field `field` in b[0..len), or -1 if the top level is not
 * well-formed (protobuf-c will refuse those bytes anyway). */
static inline long pb_count_field(const uint8_t *b, size_t len, uint32_t field) {
    size_t p = 0;
    long n = 0;
    while (p < len) {
        uint64_t key, v;
        if (pb_varint(b, len, &p, &key)) return -1;
        if ((key >> 3) == field) n++;
        switch (key & 7) {
        case 0:
            if (pb_varint(b, len, &p, &v)) return -1;
            break;
        case 1:
            if (len - p < 8) return -1;
            p += 8;
            break;
        case 5:
            if (len - p < 4) return -1;
            p += 4;
            break;
        case 2:
            if (pb_varint(b, len, &p, &v) || v > len - p) return -1;
            p += (size_t)v;
            break;
        default:
            return -1;
        }
    }
    return n;
}

#endif
