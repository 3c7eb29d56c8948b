/* Machine-readable reports of routing statistics: JSON, tidy CSV and SVG plots. */
#ifndef MOE_ROUTE_REPORT_H
#define MOE_ROUTE_REPORT_H

#include <stdint.h>

#include "output.h"
#include "route_stats.h"

/*
 * Renderers write to a caller-owned moe_output and return 0 or a negative
 * moe_err code (the detail is on the output: moe_output_errstr()). Cache
 * sizes select which sizes C are reported (n = 0: 1..E).
 */
struct moe_route_report {
	const uint32_t *cache_sizes;
	uint32_t n_cache_sizes;
};

/* Everything: shape, options, per-layer and overall metrics, windows. */
int moe_route_report_json(const struct moe_route_stats *s,
	const struct moe_route_report *r, struct moe_output *o);
/* Long form: layer,expert,metric,value ("all" for the overall rows,
 * empty expert for per-layer metrics). */
int moe_route_report_csv(const struct moe_route_stats *s,
	const struct moe_route_report *r, struct moe_output *o);
/* Layer x expert load heatmap and cache hit-rate curves (all layers). */
int moe_route_report_svg(const struct moe_route_stats *s,
	const struct moe_route_report *r, struct moe_output *o);

/* Hit rate of policy pol for cache size c summed over all layers; NaN
 * when the simulation is off or saw nothing. */
double moe_route_report_hit_rate(const struct moe_route_stats *s, int pol, uint32_t c);

#endif
