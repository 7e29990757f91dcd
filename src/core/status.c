/* status.c — status strings and the thread-local error message. */
#include "core/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_err[1024];

const char *idl_version(void) {
    return IDL_VERSION_STRING;
}

const char *idl_status_str(idl_status s) {
    switch (s) {
#define IDL__X(name, code, text) \
    case IDL_##name:             \
        return text;
        IDL_STATUS_MAP(IDL__X)
#undef IDL__X
    }
    return "unknown status";
}

const char *idl_last_error(void) {
    return g_err;
}

void idl__error_clear(void) {
    g_err[0] = 0;
}

idl_status idl__error(idl_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    idl__log(IDL_LOG_DEBUG, "error %d: %s", (int)code, g_err);
    return code;
}

idl_status idl__error_prefix(idl_status code, const char *fmt, ...) {
    char old[sizeof g_err];
    memcpy(old, g_err, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    if (w >= 0 && (size_t)w < sizeof g_err) {
        size_t room = sizeof g_err - (size_t)w - 1, lo = strlen(old);
        memcpy(g_err + w, old, lo < room ? lo : room);
        g_err[w + (lo < room ? lo : room)] = 0;
    }
    return code;
}

void idl__abort(const char *file, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    idl__log(IDL_LOG_ERROR, "%s:%d: %s", file, line, msg);
    abort();
}

static int lev(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 128 || lb > 128) return 1000;
    int row[130];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int sub = prev + (a[i - 1] != b[j - 1]);
            int v = IDL_MIN(row[j] + 1, row[j - 1] + 1);
            row[j] = IDL_MIN(v, sub);
            prev = cur;
        }
    }
    return row[lb];
}

void idl__close_matches(const char *name, const char *const *cand, int n, char *buf, size_t cap) {
    int best[5] = { -1, -1, -1, -1, -1 }, bestd[5] = { 0 };
    size_t ln = strlen(name);
    for (int i = 0; i < n; i++) {
        if (!cand[i] || !cand[i][0]) continue;
        int d = lev(name, cand[i]);
        if (strstr(cand[i], name) && ln >= 3) d = IDL_MIN(d, 1);
        int limit = (int)(ln / 3) + 2;
        if (d > limit) continue;
        for (int k = 0; k < 5; k++) {
            if (best[k] < 0 || d < bestd[k]) {
                for (int m = 4; m > k; m--) {
                    best[m] = best[m - 1];
                    bestd[m] = bestd[m - 1];
                }
                best[k] = i;
                bestd[k] = d;
                break;
            }
        }
    }
    size_t used = 0;
    buf[0] = 0;
    for (int k = 0; k < 5 && best[k] >= 0; k++) {
        int w = snprintf(buf + used, cap - used, "%s'%s'", k ? ", " : "", cand[best[k]]);
        if (w < 0 || (size_t)w >= cap - used) break;
        used += (size_t)w;
    }
}
