/* log.c — the log callback; the only path by which the library emits text. */
#include "core/internal.h"

#include <stdio.h>

static void default_log(idl_log_level level, const char *msg, void *user) {
    static const char *names[] = { "debug", "info", "warning", "error" };
    (void)user;
    fprintf(stderr, "interpretdl: %s: %s\n", names[level], msg);
}

static idl_log_fn g_log = default_log;
static void *g_log_user;
static idl_log_level g_min = IDL_LOG_WARN;

void idl_log_set(idl_log_fn cb, void *user, idl_log_level min_level) {
    g_log = cb ? cb : default_log;
    g_log_user = user;
    g_min = min_level;
}

void idl__log(idl_log_level level, const char *fmt, ...) {
    if (level < g_min) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g_log(level, msg, g_log_user);
}
