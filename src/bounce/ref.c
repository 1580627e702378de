/*
 * ref.c - signed message references (see ref.h).
 */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "ref.h"

#define ID_LEN 16
#define MAC_LEN 10
#define RAW_LEN (ID_LEN + MAC_LEN)

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

static int
b32_val(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

static void
mac(const unsigned char key[BOUNCE_REF_KEY_LEN], const unsigned char id[ID_LEN],
    unsigned char out[MAC_LEN])
{
    unsigned char data[6 + ID_LEN], md[32];

    memcpy(data, "bounce", 6);
    memcpy(data + 6, id, ID_LEN);
    crypto_hmac_sha256(key, BOUNCE_REF_KEY_LEN, data, sizeof(data), md);
    memcpy(out, md, MAC_LEN);
}

void
bounce_ref_make(const unsigned char key[BOUNCE_REF_KEY_LEN], const char *message_id,
                char out[BOUNCE_REF_LEN + 1])
{
    unsigned char raw[RAW_LEN] = {0};
    unsigned acc = 0;
    int bits = 0, o = 0;

    if (crypto_uuid_valid(message_id))
        crypto_uuid_bytes(message_id, raw);
    mac(key, raw, raw + ID_LEN);
    for (int i = 0; i < RAW_LEN; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = b32[(acc << (5 - bits)) & 31];
    out[o] = '\0';
}

bool
bounce_ref_verify(const unsigned char (*keys)[BOUNCE_REF_KEY_LEN], int nkeys, const char *ref,
                  char message_id[MC_UUID_LEN + 1])
{
    unsigned char raw[RAW_LEN + 1], want[MAC_LEN];
    unsigned acc = 0;
    int bits = 0, o = 0;
    bool ok = false;

    if (ref == NULL || strlen(ref) != BOUNCE_REF_LEN)
        return false;
    for (int i = 0; i < BOUNCE_REF_LEN; i++) {
        int v = b32_val(ref[i]);
        if (v < 0)
            return false;
        acc = (acc << 5) | (unsigned)v;
        bits += 5;
        if (bits >= 8) {
            raw[o++] = (unsigned char)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    /* 42 characters carry 210 bits: the last 2 must be zero (one spelling only). */
    if (o != RAW_LEN || (acc & ((1u << bits) - 1)) != 0)
        return false;
    for (int k = 0; k < nkeys; k++) {
        mac(keys[k], raw, want);
        ok |= CRYPTO_memcmp(want, raw + ID_LEN, MAC_LEN) == 0;
    }
    if (!ok)
        return false;
    crypto_uuid_text(raw, message_id);
    return true;
}

bool
bounce_ref_from_address(const char *addr, char out[BOUNCE_REF_LEN + 1])
{
    size_t plen = strlen(BOUNCE_REF_PREFIX);

    if (addr == NULL)
        return false;
    if (*addr == '<')
        addr++;
    if (strncasecmp(addr, BOUNCE_REF_PREFIX, plen) != 0)
        return false;
    addr += plen;
    for (int i = 0; i < BOUNCE_REF_LEN; i++) {
        if (b32_val(addr[i]) < 0)
            return false;
        out[i] = (char)(addr[i] | 0x20);
        if (addr[i] >= '2' && addr[i] <= '7')
            out[i] = addr[i];
    }
    out[BOUNCE_REF_LEN] = '\0';
    return addr[BOUNCE_REF_LEN] == '@';
}
