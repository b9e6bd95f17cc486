/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include <glib.h>

/* Asynchronous polkit CheckAuthorization over sd-bus, in the manner of
 * systemd's bus_verify_polkit_async(): the first call starts the query and
 * returns 0 (the method must then return 1 without replying: 0 would
 * tell sd-bus it was not handled); when polkit answers, the original
 * message is dispatched again, and this time the call returns 1
 * (authorized) or a negative errno with error set.
 *
 * An answer holds only for the action and details it was asked for: a
 * method that checks twice, or whose details differ on the second
 * dispatch, makes polkit be asked again. Whatever the method does on the
 * second dispatch, even failing before it reaches polkit_verify(), the
 * answers are dropped once the message has been dispatched.
 *
 * Callers with user ID 0, as the bus (not /proc) reports it, are
 * authorized without asking polkit.
 *
 * The bus must be attached to an sd-event loop. */

typedef struct PolkitRegistry PolkitRegistry;

PolkitRegistry *polkit_registry_new(void);
void polkit_registry_free(PolkitRegistry *reg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PolkitRegistry, polkit_registry_free);
/* Messages with a check under way or answers not yet dropped. */
unsigned polkit_registry_pending(PolkitRegistry *reg);

/* details: NULL or a NULL-terminated list of key, value pairs. */
int polkit_verify(sd_bus_message *call, const char *action, const char *const *details,
                  PolkitRegistry *reg, sd_bus_error *error);

/* Whether the sender of call runs as root, by credentials the bus vouches
 * for. */
int bus_sender_is_root(sd_bus_message *call);
