/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "migration/jobs.h"

/* Putting devices back where no job holds them: after a daemon that was
 * killed mid-job (from the journal), and on request (Resume). Main
 * thread; each device is opened, walked or reset, and closed again. */

/* Brings a device that nothing holds back to RUNNING (a stopped source
 * of an earlier migration, say), as a rollback would: walk, else reset.
 * *ret_outcome says what was done; -EBUSY if a job or another process
 * holds it, with *ret_error naming the holder. */
int migration_resume_device(Jobs *jobs, const Device *d, char **ret_outcome, char **ret_error);

/* At start: finds devices left behind by a killed daemon and puts them
 * where the job would have left them; sweeps half-written saved states;
 * keeps job ids unique across the restart. */
void migration_recover_journal(Jobs *jobs);
