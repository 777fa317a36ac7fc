/*
 * libFuzzer target for the kubeconfig loader (lib/kube/kubeconfig.c): any
 * bytes as the kubeconfig must give a resolved context or an error, never a
 * crash, a leak or undefined behaviour. The loader reads nothing but the
 * kubeconfig (certificate and token files are only named; an exec plugin is
 * not run), so a run touches nothing else.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzzutil.h"
#include "kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const char *s)
{
	volatile size_t n = s ? strlen(s) : 0;
	(void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_quiet_log();
	const char *path = fz_temp_file("kubeconfig", data, size);
	/* the current context, and a named one (a different lookup path) */
	const char *contexts[] = {NULL, "dev"};
	for (size_t i = 0; i < 2; i++) {
		mg_kube_config_options o = {.kubeconfig = path, .context = contexts[i]};
		mg_kube_config *c = NULL;
		mg_error err = MG_ERROR_INIT;
		if (mg_kube_config_load(&c, &o, &err) == 0) {
			touch(c->files), touch(c->context), touch(c->server), touch(c->namespace_);
			touch(c->ca_file), touch(c->ca_pem), touch(c->tls_server_name);
			touch(c->client_cert_pem), touch(c->client_key_pem), touch(c->token);
			if (c->exec) {
				touch(c->exec->command);
				for (size_t j = 0; j < c->exec->nargs; j++)
					touch(c->exec->args[j]);
				for (size_t j = 0; j < c->exec->nenv; j++)
					touch(c->exec->env[j]);
			}
			mg_kube_config_free(c);
		}
		for (size_t j = 0; j < err.ndiags; j++) {
			char buf[4096];
			mg_diag_format(buf, sizeof(buf), &err.diags[j]);
		}
		mg_error_clear(&err);
	}
	return 0;
}
