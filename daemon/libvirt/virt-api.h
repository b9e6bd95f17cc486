/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

/* The libvirt functions vfiomigd calls, taken from libvirt's library when
 * first wanted rather than linked: loading libvirt and the forty
 * libraries it pulls in was most of what every start cost, on hosts
 * without libvirt too. Main thread only. */

#define VIRT_API_FUNCTIONS(X) \
        X(ConnectClose) X(ConnectDomainEventDeregisterAny) X(ConnectDomainEventRegisterAny) \
        X(ConnectListAllDomains) X(ConnectOpen) X(ConnectRegisterCloseCallback) \
        X(ConnectUnregisterCloseCallback) X(DomainCreate) X(DomainDestroy) X(DomainFree) X(DomainGetJobInfo) \
        X(DomainGetName) X(DomainGetXMLDesc) X(DomainIsActive) X(DomainLookupByName) X(DomainSetMetadata) \
        X(EventRegisterImpl) X(GetLastErrorCode) X(GetLastErrorMessage) X(SetErrorFunc)

typedef struct VirtApi {
#define VIRT_API_FIELD(f) __typeof__(vir##f) *f;
        VIRT_API_FUNCTIONS(VIRT_API_FIELD)
#undef VIRT_API_FIELD
} VirtApi;

/* libvirt's functions, loaded on the first call; NULL if libvirt cannot
 * be loaded, and *ret_error (if not NULL) says why. */
const VirtApi *virt_api(char **ret_error);
