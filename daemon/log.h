/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <syslog.h>

/* Logging to stderr. When stderr is connected to the journal (systemd
 * sets $JOURNAL_STREAM), each line carries a <N> priority prefix so the
 * journal records the right level; otherwise lines are plain text. */

void log_set_max_level(int level);
int log_get_max_level(void);
int log_level_from_string(const char *s);
void log_open(void);

int log_internal(int level, int error, const char *format, ...) __attribute__((format(printf, 3, 4)));

#define log_full_errno(level, error, ...)                                       \
        ({                                                                      \
                int _l = (level), _e = (error);                                 \
                _l <= log_get_max_level() ? log_internal(_l, _e, __VA_ARGS__)   \
                                          : -abs(_e);                            \
        })
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

/* These return -abs(error), so "return log_error_errno(r, ...);" works. */
#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)
