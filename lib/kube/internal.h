/*
 * Shared between the files of lib/kube/ (the kubeconfig loader and the
 * client both hold credentials). Not part of the library's API.
 */
#ifndef MG_KUBE_INTERNAL_H
#define MG_KUBE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "configmap.h"
#include "error.h"
#include "template.h"

/* Overwrites a credential (NUL-terminated) before freeing it; NULL is a no-op. */
void mg_kube_wipe_free(char *s);

/* MG_ENOMEM with the one message every kube file gives for it. */
int mg_kube_oom(mg_error *err);

/* A growing string (the templates' substitution and YAML output); oom once a realloc failed. */
typedef struct {
	char *s;
	size_t len, cap;
	bool oom;
} mg_kube_sbuf;
void mg_kube_sb_add(mg_kube_sbuf *b, const char *s, size_t n);

/* Whether a template output string may go out unquoted and be read back as the same string. */
bool mg_kube_plain_safe(const char *s);

/*
 * mg_template_plan_vars_new for the cluster side (mg_cluster_render): the same
 * build, with errors that name the nginx tree rather than the references.
 */
int mg_kube_plan_vars_new(mg_template_plan_vars **out, const mg_plan *plan, const char *version,
                          mg_error *err);
/* The ConfigMap of the i-th kubernetes.configmaps entry, as built for the variables. */
const mg_cm *mg_kube_plan_vars_configmap(const mg_template_plan_vars *pv, size_t i);

#endif
