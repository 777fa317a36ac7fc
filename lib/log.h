/*
 * The only way lib/ says anything. The front end installs a sink; with none
 * installed, messages are dropped, so the library never writes to a terminal
 * or a JSON stream behind the caller's back.
 */
#ifndef MG_LOG_H
#define MG_LOG_H

typedef enum { MG_LOG_DEBUG, MG_LOG_INFO, MG_LOG_WARN, MG_LOG_ERROR } mg_log_level;

typedef void (*mg_log_fn)(mg_log_level level, const char *msg, void *ud);

void mg_log_set(mg_log_fn fn, void *ud, mg_log_level min_level);
void mg_log(mg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
