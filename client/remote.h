/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <poll.h>
#include <sys/types.h>

#include "ctl.h"

/* A target on another host, from "[USER@]HOST:TARGET". */
typedef struct RemoteTarget {
        char *host;             /* as ssh takes it: [USER@]HOST */
        char *device;
        char *text;             /* "HOST:TARGET" for messages */
} RemoteTarget;

void remote_target_clear(RemoteTarget *t);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(RemoteTarget, remote_target_clear);

/* Whether arg names a device on another host, and which. A PCI address
 * has colons of its own: an argument that is one stays local. With
 * device_only, the part after the host must be a device name too: for
 * save, whose second argument may be a saved state's name with a colon,
 * and for migrate, where anything else is a local name mistyped.
 * Returns true and fills ret, or false for a local argument. */
bool remote_target_parse(const char *arg, bool device_only, RemoteTarget *ret);

/* vfiomigctl on the other host, through the ssh command, with pipes for
 * its standard input, output and error. */
typedef struct Remote {
        char *host;
        pid_t pid;
        int in_fd, out_fd, err_fd;
        GString *out, *err;     /* what it printed so far */
        int status;             /* its exit status once ended; 255 when ssh failed, -1 when killed */
} Remote;

void remote_clear(Remote *r);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Remote, remote_clear);

/* Starts COMMAND HOST vfiomigctl WORDS..., each word quoted for the
 * remote shell, which ssh hands the command line to. */
int remote_spawn(Ctl *ctl, const char *host, const char *const *words, Remote *ret);
/* While something else runs too (a job here): its output pipes that are
 * still open as pollfds in p (room for two); returns how many. */
unsigned remote_poll_fds(const Remote *r, struct pollfd *p);
/* Reads what poll() found in them; once both are at their end, reaps
 * the command. A command that fills a pipe nobody reads would stall. */
void remote_dispatch(Remote *r, const struct pollfd *p, unsigned n);
/* Whether it has exited (and status says how). */
bool remote_ended(const Remote *r);
/* Closes its standard input, reads its output to the end and reaps it. */
int remote_finish(Remote *r);
/* What a failed remote command said, for one line of a message. */
char *remote_describe_failure(const Remote *r);
/* The exit status of ours that a failed remote command gives. */
int remote_exit_code(const Remote *r);

/* Asks HOST whether rt's device takes the identity of the local device
 * source; prints why not. EXIT_OK to go ahead. */
int remote_check_identity(Ctl *ctl, const char *source, const RemoteTarget *rt);
