/* The rules every traffic driver follows: health gate, read-back, tolerance. */
#include "traffic.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct mg_traffic {
	const mg_traffic_ops *ops;
	void *drv;
};

int mg_traffic_open(mg_traffic **out, const mg_plan_traffic *plan, mg_error *err)
{
	*out = NULL;
	mg_traffic *t = calloc(1, sizeof(*t));
	if (!t)
		return mg_error_oom(err);
	int rc;
	switch (plan->provider) {
	case MG_PROVIDER_HAPROXY:
		t->ops = &mg_traffic_haproxy_ops;
		rc = plan->haproxy ? mg_traffic_haproxy_new(&t->drv, plan->haproxy, err)
		                   : mg_error_set(err, MG_EINVALID, "no traffic.haproxy section");
		break;
	case MG_PROVIDER_NGINX:
		t->ops = &mg_traffic_nginx_ops;
		rc = plan->nginx ? mg_traffic_nginx_new(&t->drv, plan->nginx, err)
		                 : mg_error_set(err, MG_EINVALID, "no traffic.nginx section");
		break;
	case MG_PROVIDER_CLOUDFLARE:
		t->ops = &mg_traffic_cloudflare_ops;
		rc = plan->cloudflare
		         ? mg_traffic_cloudflare_new(&t->drv, plan->cloudflare, err)
		         : mg_error_set(err, MG_EINVALID, "no traffic.cloudflare section");
		break;
	default:
		rc = mg_error_set(err, MG_EINVALID, "unknown traffic provider");
	}
	if (rc) {
		free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int mg_traffic_open_driver(mg_traffic **out, const mg_traffic_ops *ops, void *drv, mg_error *err)
{
	*out = NULL;
	if (!ops || !ops->name || !ops->read || !ops->apply || !ops->describe)
		return mg_error_set(err, MG_EINVALID,
		                    "traffic driver without a name, read, apply or describe");
	mg_traffic *t = calloc(1, sizeof(*t));
	if (!t)
		return mg_error_oom(err);
	t->ops = ops;
	t->drv = drv;
	*out = t;
	return 0;
}

void mg_traffic_free(mg_traffic *t)
{
	if (!t)
		return;
	if (t->ops && t->ops->free && t->drv)
		t->ops->free(t->drv);
	free(t);
}

const char *mg_traffic_name(const mg_traffic *t)
{
	return t->ops->name;
}

int mg_traffic_read(mg_traffic_state *out, mg_traffic *t, mg_error *err)
{
	memset(out, 0, sizeof(*out));
	return t->ops->read(t->drv, out, err);
}

int mg_traffic_settle(mg_traffic *t, mg_error *err)
{
	return t->ops->settle ? t->ops->settle(t->drv, err) : 0;
}

/* NaN would slip past the direction checks in apply, and with them the health gate. */
static int check_share(double k8s_percent, mg_error *err)
{
	if (!(k8s_percent >= 0 && k8s_percent <= 100))
		return mg_error_set(err, MG_EINVALID,
		                    "cannot send %g%% to the cluster: a share is from 0%% to 100%%",
		                    k8s_percent);
	return 0;
}

int mg_traffic_describe(json_t **out, mg_traffic *t, double k8s_percent, mg_error *err)
{
	*out = NULL;
	int rc = check_share(k8s_percent, err);
	return rc ? rc : t->ops->describe(t->drv, k8s_percent, out, err);
}

/* Names of the servers of one side that the balancer says cannot take traffic. */
static size_t unhealthy(const mg_traffic_state *st, bool k8s, char *names, size_t size,
                        size_t *total)
{
	size_t n = 0, o = 0;
	*total = 0;
	names[0] = '\0';
	for (size_t i = 0; i < st->nservers; i++) {
		const mg_traffic_server *s = &st->servers[i];
		if (s->k8s != k8s)
			continue;
		(*total)++;
		if (s->health != MG_HEALTH_DOWN && s->health != MG_HEALTH_MAINT)
			continue;
		if (o < size)
			o += (size_t)snprintf(names + o, size - o, "%s%s (%s)", n ? ", " : "",
			                      s->name,
			                      *s->detail ? s->detail : mg_health_name(s->health));
		n++;
	}
	return n;
}

int mg_traffic_apply(mg_traffic_state *out, mg_traffic *t, double k8s_percent, bool allow_unhealthy,
                     mg_error *err)
{
	mg_traffic_state before, after;
	if (out)
		memset(out, 0, sizeof(*out));
	int rc = check_share(k8s_percent, err);
	if (rc)
		return rc;
	rc = mg_traffic_read(&before, t, err);
	if (rc)
		return rc;
	bool towards_k8s = k8s_percent > before.k8s_percent;
	bool towards_vms = k8s_percent < before.k8s_percent;
	char names[1024];
	size_t total;
	if (towards_k8s && !allow_unhealthy &&
	    unhealthy(&before, true, names, sizeof(names), &total)) {
		mg_traffic_state_clear(&before);
		return mg_error_set(
		    err, MG_ERROR,
		    "refusing to send more traffic to the cluster: %s reports %s not "
		    "able to take it; fix them or pass --force",
		    t->ops->name, names);
	}
	if (towards_vms) {
		size_t down = unhealthy(&before, false, names, sizeof(names), &total);
		if (down == total && total && !allow_unhealthy) {
			mg_traffic_state_clear(&before);
			return mg_error_set(
			    err, MG_ERROR,
			    "refusing to send traffic back to the VMs: every VM server "
			    "is down (%s); pass --force to do it anyway",
			    names);
		}
		if (down)
			mg_log(MG_LOG_WARN, "moving traffic to the VMs while %s reports %s",
			       t->ops->name, names);
	}
	mg_traffic_state_clear(&before);

	rc = t->ops->apply(t->drv, k8s_percent, err);
	if (rc)
		return rc;
	/* never report what the balancer does not confirm */
	rc = mg_traffic_read(&after, t, err);
	if (rc)
		return rc;
	if (!mg_traffic_same_share(after.k8s_percent, k8s_percent)) {
		rc = mg_error_set(err, MG_ERROR,
		                  "%s was asked for %.3g%% to the cluster but reads back %.3g%%",
		                  t->ops->name, k8s_percent, after.k8s_percent);
		/* the balancer did change: the caller still gets what it really holds */
		if (out)
			*out = after;
		else
			mg_traffic_state_clear(&after);
		return rc;
	}
	if (out)
		*out = after;
	else
		mg_traffic_state_clear(&after);
	return 0;
}

bool mg_traffic_same_share(double a, double b)
{
	return fabs(a - b) <= MG_TRAFFIC_SAME_SHARE;
}

void mg_traffic_state_clear(mg_traffic_state *st)
{
	if (!st)
		return;
	free(st->servers);
	memset(st, 0, sizeof(*st));
}

const char *mg_health_name(mg_health h)
{
	switch (h) {
	case MG_HEALTH_UP:
		return "up";
	case MG_HEALTH_DOWN:
		return "down";
	case MG_HEALTH_MAINT:
		return "maintenance";
	default:
		return "unknown";
	}
}

json_t *mg_traffic_state_to_json(const mg_traffic_state *st)
{
	json_t *servers = json_array();
	for (size_t i = 0; i < st->nservers; i++) {
		const mg_traffic_server *s = &st->servers[i];
		json_array_append_new(
		    servers, json_pack("{s:s, s:s, s:f, s:s, s:s}", "name", s->name, "side",
		                       s->k8s ? "k8s" : "vm", "weight", s->weight, "health",
		                       mg_health_name(s->health), "detail", s->detail));
	}
	return json_pack("{s:f, s:f, s:o}", "k8s_percent", st->k8s_percent, "vm_percent",
	                 100 - st->k8s_percent, "servers", servers);
}
