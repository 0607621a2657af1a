/* XXH64, written from the published xxHash specification (doc/xxhash_spec.md, "XXH64 algorithm").
 *
 * Header-only so the hashing, partitioning and serialisation modules can inline it into their per-record
 * loops. Reads are little-endian regardless of the host, so hashes are identical on every machine.
 */
#ifndef PS_XXHASH_H
#define PS_XXHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PS_XXH_P1 0x9E3779B185EBCA87ULL
#define PS_XXH_P2 0xC2B2AE3D27D4EB4FULL
#define PS_XXH_P3 0x165667B19E3779F9ULL
#define PS_XXH_P4 0x85EBCA77C2B2AE63ULL
#define PS_XXH_P5 0x27D4EB2F165667C5ULL

static inline uint64_t ps_xxh_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t ps_xxh_read64(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) | ((uint64_t)p[3] << 24) |
           ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) | ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
#endif
}

static inline uint32_t ps_xxh_read32(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#else
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
#endif
}

static inline uint64_t ps_xxh_round(uint64_t acc, uint64_t input) {
    acc += input * PS_XXH_P2;
    acc = ps_xxh_rotl(acc, 31);
    return acc * PS_XXH_P1;
}

static inline uint64_t ps_xxh_merge_round(uint64_t acc, uint64_t val) {
    acc ^= ps_xxh_round(0, val);
    return acc * PS_XXH_P1 + PS_XXH_P4;
}

static inline uint64_t ps_xxh64_avalanche(uint64_t h) {
    h ^= h >> 33;
    h *= PS_XXH_P2;
    h ^= h >> 29;
    h *= PS_XXH_P3;
    h ^= h >> 32;
    return h;
}

static inline uint64_t ps_xxh64(const void *data, size_t len, uint64_t seed) {
    const uint8_t *p = (const uint8_t *)data;
    const uint8_t *end = p + len;
    uint64_t h;

    if (len >= 32) {
        const uint8_t *limit = end - 32;
        uint64_t v1 = seed + PS_XXH_P1 + PS_XXH_P2;
        uint64_t v2 = seed + PS_XXH_P2;
        uint64_t v3 = seed;
        uint64_t v4 = seed - PS_XXH_P1;
        do {
            v1 = ps_xxh_round(v1, ps_xxh_read64(p));
            v2 = ps_xxh_round(v2, ps_xxh_read64(p + 8));
            v3 = ps_xxh_round(v3, ps_xxh_read64(p + 16));
            v4 = ps_xxh_round(v4, ps_xxh_read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = ps_xxh_rotl(v1, 1) + ps_xxh_rotl(v2, 7) + ps_xxh_rotl(v3, 12) + ps_xxh_rotl(v4, 18);
        h = ps_xxh_merge_round(h, v1);
        h = ps_xxh_merge_round(h, v2);
        h = ps_xxh_merge_round(h, v3);
        h = ps_xxh_merge_round(h, v4);
    } else {
        h = seed + PS_XXH_P5;
    }
    h += (uint64_t)len;

    while (p + 8 <= end) {
        h ^= ps_xxh_round(0, ps_xxh_read64(p));
        h = ps_xxh_rotl(h, 27) * PS_XXH_P1 + PS_XXH_P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)ps_xxh_read32(p) * PS_XXH_P1;
        h = ps_xxh_rotl(h, 23) * PS_XXH_P2 + PS_XXH_P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p) * PS_XXH_P5;
        h = ps_xxh_rotl(h, 11) * PS_XXH_P1;
        p++;
    }
    return ps_xxh64_avalanche(h);
}

/* Hash of one 64-bit word, equal to ps_xxh64 of its 8 little-endian bytes, without the generic loop. */
static inline uint64_t ps_xxh64_u64(uint64_t word, uint64_t seed) {
    uint64_t h = seed + PS_XXH_P5 + 8;
    h ^= ps_xxh_round(0, word);
    h = ps_xxh_rotl(h, 27) * PS_XXH_P1 + PS_XXH_P4;
    return ps_xxh64_avalanche(h);
}

#endif
