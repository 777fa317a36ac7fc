/*
 * Shared between the files of lib/kube/ (the kubeconfig loader and the
 * client both hold credentials). Not part of the library's API.
 */
#ifndef MG_KUBE_INTERNAL_H
#define MG_KUBE_INTERNAL_H

#include "error.h"

/* Overwrites a credential (NUL-terminated) before freeing it; NULL is a no-op. */
void mg_kube_wipe_free(char *s);

/* MG_ENOMEM with the one message every kube file gives for it. */
int mg_kube_oom(mg_error *err);

#endif
