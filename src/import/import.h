/*
 * import.h - the bulk import pipeline: recipients into a list, or addresses
 * into a tenant's suppression list, from CSV (streamed) or JSON.
 *
 * The caller (the HTTP handler today; a CLI or a file watcher could be
 * another) creates an import, feeds it the body as it arrives, finishes
 * it, and answers with its report.  The pipeline knows nothing of HTTP:
 * it returns an mc_err and keeps a message (and, for a request-level
 * problem, the field it is about) for the caller to show.
 */
#ifndef MC_IMPORT_H
#define MC_IMPORT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/config.h"
#include "core/err.h"
#include "store/store.h"

enum import_kind { IMPORT_RECIPIENTS, IMPORT_SUPPRESSIONS };
enum import_format { IMPORT_CSV, IMPORT_JSON };

struct import;

/*
 * A new import for tenant_id into list_id (recipients; NULL for
 * suppressions), in mode (recipients only).  Limits come from cfg
 * (import_batch_size, import_max_row, import_max_json); st and cfg are
 * borrowed for the import's life.  The list is not checked here.
 */
struct import *import_new(struct store *st, const struct config *cfg, enum import_kind kind,
                          enum import_format fmt, const char *tenant_id, const char *list_id,
                          enum import_mode mode);
void import_free(struct import *im);

/*
 * Feeds the next bytes of the body.  CSV rows are parsed and written in
 * batches of import_batch_size as they complete; JSON is kept (bounded by
 * import_max_json) until import_finish.  Returns MC_ERR_OK, or the error
 * that stopped the import (see import_error); once stopped, further bytes
 * are ignored and the same error is returned.
 */
mc_err import_feed(struct import *im, const char *data, size_t len);
/*
 * Ends the import: parses a JSON body, writes the last batch.  Returns
 * MC_ERR_OK or the error that stopped it.  Rows written before a failure
 * stay written: the report counts them.
 */
mc_err import_finish(struct import *im);

/*
 * Why the import stopped: a message (owned by im), and in *field the
 * request field it is about (static; NULL for none), and in *with_report
 * whether rows may have been read, so the report belongs in the answer.
 */
const char *import_error(const struct import *im, const char **field, bool *with_report);
/*
 * The report (a new reference): total, invalid, imported, and updated,
 * skipped_duplicates, skipped_suppressed (recipients) or skipped_duplicates
 * (suppressions), and the first 100 invalid rows with their line numbers.
 */
json_t *import_report(const struct import *im);

#endif
