/* Selective scan (Mamba S6) forward and backward, written once over a lane vector type.
 *
 * selective_scan.c includes this file once per variant, defining:
 *   REAL     the scalar type (float or double)
 *   VEC, VL  the lane vector type and its lane count (VEC may be REAL itself, VL = 1)
 *   SUF      the suffix of the exported names
 *   VEXP(v), VSOFTPLUS(v), VSIGMOID(v), VSPLAT(s), VLOAD(p), VSTORE(p, v),
 *   VSTORESUMS(dst, t, cnt): dst[j] = sum of the lanes of t[j] for j < cnt
 *
 * Contract (mamba-ssm's selective_scan_fn), for every (batch b, group k, channel c),
 * visiting the positions of group k in the order order[k, 0..L-1] (identity when order is
 * NULL):
 *
 *   dt_l = softplus(delta_l + bias)     (delta_l + bias when softplus is off; bias may be NULL)
 *   h_l  = exp(dt_l * A) * h_{l-1} + dt_l * u_l * B_l        h before the first step = 0
 *   y_l  = sum_n C_l[n] h_l[n] + D * u_l                     written at the same position
 *
 * Work is split into units (b, k, block of W = NV * VL adjacent channels); B_l and C_l are
 * shared by every channel of a unit, so each step is NV independent vector updates per state.
 */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SUF)
#define MAX_NV (MAX_W / VL)

ALWAYS_INLINE int64_t FN(position)(const ScanArgs *a, int64_t k, int64_t i) {
    return a->order ? a->order[k * a->L + i] : i;
}

/* Per-unit constants: A as At[s][v], D and the delta bias as vectors. */
typedef struct {
    VEC At[MAX_STATE][MAX_NV], D[MAX_NV], bias[MAX_NV];
} FN(UnitConsts);

ALWAYS_INLINE void FN(load_consts)(const ScanArgs *a, int64_t k, int64_t c0, int NV,
                                   FN(UnitConsts) *uc) {
    const REAL *A = (const REAL *)a->A, *D = (const REAL *)a->D, *bias = (const REAL *)a->delta_bias;
    for (int64_t s = 0; s < a->n; s++)
        for (int v = 0; v < NV; v++) {
            REAL lanes[VL];
            for (int q = 0; q < VL; q++) lanes[q] = A[(k * a->d + c0 + v * VL + q) * a->n + s];
            uc->At[s][v] = VLOAD(lanes);
        }
    for (int v = 0; v < NV; v++) {
        uc->D[v] = D ? VLOAD(D + k * a->d + c0 + v * VL) : VSPLAT(0);
        uc->bias[v] = bias ? VLOAD(bias + k * a->d + c0 + v * VL) : VSPLAT(0);
    }
}

/* dt of one step from delta at offset `o`; raw (delta + bias) is kept for the backward pass. */
ALWAYS_INLINE VEC FN(step_dt)(const ScanArgs *a, const REAL *delta, VEC bias, VEC *raw) {
    VEC x = VLOAD(delta) + bias;
    *raw = x;
    return a->softplus ? VSOFTPLUS(x) : x;
}

ALWAYS_INLINE void FN(forward_unit)(const ScanArgs *a, int64_t unit, int NV) {
    const REAL *u = (const REAL *)a->u, *delta = (const REAL *)a->delta;
    const REAL *Bm = (const REAL *)a->B, *Cm = (const REAL *)a->C;
    REAL *y = (REAL *)a->y, *hchk = (REAL *)a->hchk;
    const int64_t W = NV * VL, nblk = a->d / W, n = a->n, d = a->d, K = a->K, L = a->L;
    const int64_t blk = unit % nblk, k = (unit / nblk) % K, b = unit / (nblk * K), c0 = blk * W;
    const int64_t nchunks = (L + a->chunk - 1) / a->chunk;
    const int64_t off_x = b * a->x_sb + k * a->x_sk + c0, off_d = b * a->dl_sb + k * a->dl_sk + c0;
    const int64_t off_B = b * a->B_sb + k * a->B_sk, off_C = b * a->C_sb + k * a->C_sk;

    FN(UnitConsts) uc;
    FN(load_consts)(a, k, c0, NV, &uc);
    VEC h[MAX_STATE][MAX_NV];
    for (int64_t s = 0; s < n; s++)
        for (int v = 0; v < NV; v++) h[s][v] = VSPLAT(0);

    for (int64_t i = 0; i < L; i++) {
        if (hchk && i % a->chunk == 0) {
            /* state before the first step of each chunk, for the backward pass */
            REAL *dst = hchk + (((b * K + k) * nchunks + i / a->chunk) * n) * d + c0;
            for (int64_t s = 0; s < n; s++)
                for (int v = 0; v < NV; v++) VSTORE(dst + s * d + v * VL, h[s][v]);
        }
        const int64_t l = FN(position)(a, k, i), xo = off_x + l * a->x_sl;
        const REAL *dl = delta + off_d + l * a->dl_sl;
        const REAL *Bl = Bm + off_B + l * a->B_sl, *Cl = Cm + off_C + l * a->C_sl;
        VEC dt[MAX_NV], dtu[MAX_NV], acc[MAX_NV], raw;
        for (int v = 0; v < NV; v++) {
            VEC uv = VLOAD(u + xo + v * VL);
            dt[v] = FN(step_dt)(a, dl + v * VL, uc.bias[v], &raw);
            dtu[v] = dt[v] * uv;
            acc[v] = uc.D[v] * uv;
        }
        for (int64_t s = 0; s < n; s++) {
            const VEC bs = VSPLAT(Bl[s]), cs = VSPLAT(Cl[s]);
            for (int v = 0; v < NV; v++) {
                VEC hs = VEXP(dt[v] * uc.At[s][v]) * h[s][v] + dtu[v] * bs;
                h[s][v] = hs;
                acc[v] += cs * hs;
            }
        }
        for (int v = 0; v < NV; v++) VSTORE(y + xo + v * VL, acc[v]);
    }
}

ALWAYS_INLINE void FN(backward_unit)(const ScanArgs *a, int64_t unit, int NV, VEC *hbuf, VEC *dAbuf) {
    const REAL *u = (const REAL *)a->u, *delta = (const REAL *)a->delta;
    const REAL *Bm = (const REAL *)a->B, *Cm = (const REAL *)a->C;
    const REAL *dy = (const REAL *)a->dy, *hchk = (const REAL *)a->hchk;
    const int64_t W = NV * VL, nblk = a->d / W, n = a->n, d = a->d, K = a->K, L = a->L;
    const int64_t Q = a->chunk, nchunks = (L + Q - 1) / Q;
    const int64_t blk = unit % nblk, k = (unit / nblk) % K, b = unit / (nblk * K), c0 = blk * W;
    const int64_t off_x = b * a->x_sb + k * a->x_sk + c0, off_d = b * a->dl_sb + k * a->dl_sk + c0;
    const int64_t off_B = b * a->B_sb + k * a->B_sk, off_C = b * a->C_sb + k * a->C_sk;
    /* dB, dC: one partial slab (batch, L, K, n) per channel block, summed by the caller */
    REAL *dB = (REAL *)a->dB + blk * a->batch * L * K * n + (b * L * K + k) * n;
    REAL *dC = (REAL *)a->dC + blk * a->batch * L * K * n + (b * L * K + k) * n;
    const int64_t step = n * NV; /* vectors per step in hbuf / dAbuf */

    FN(UnitConsts) uc;
    FN(load_consts)(a, k, c0, NV, &uc);
    VEC g[MAX_STATE][MAX_NV], gA[MAX_STATE][MAX_NV], gD[MAX_NV], gbias[MAX_NV];
    for (int v = 0; v < NV; v++) gD[v] = gbias[v] = VSPLAT(0);
    for (int64_t s = 0; s < n; s++)
        for (int v = 0; v < NV; v++) g[s][v] = gA[s][v] = VSPLAT(0);

    for (int64_t c = nchunks - 1; c >= 0; c--) {
        const int64_t i0 = c * Q, i1 = (i0 + Q < L) ? i0 + Q : L;
        /* recompute the chunk from its checkpoint: hbuf[j] = state before step i0 + j */
        const REAL *src = hchk + (((b * K + k) * nchunks + c) * n) * d + c0;
        for (int64_t s = 0; s < n; s++)
            for (int v = 0; v < NV; v++) hbuf[s * NV + v] = VLOAD(src + s * d + v * VL);
        for (int64_t i = i0; i < i1; i++) {
            const int64_t l = FN(position)(a, k, i), xo = off_x + l * a->x_sl;
            const REAL *dl = delta + off_d + l * a->dl_sl, *Bl = Bm + off_B + l * a->B_sl;
            const VEC *hp = hbuf + (i - i0) * step;
            VEC *hn = hbuf + (i - i0 + 1) * step, *dA = dAbuf + (i - i0) * step, raw;
            for (int v = 0; v < NV; v++) {
                VEC dt = FN(step_dt)(a, dl + v * VL, uc.bias[v], &raw);
                VEC dtu = dt * VLOAD(u + xo + v * VL);
                for (int64_t s = 0; s < n; s++) {
                    VEC e = VEXP(dt * uc.At[s][v]);
                    dA[s * NV + v] = e;
                    hn[s * NV + v] = e * hp[s * NV + v] + dtu * VSPLAT(Bl[s]);
                }
            }
        }
        /* walk the chunk backwards; g holds dLoss/dh flowing in from later steps */
        for (int64_t i = i1 - 1; i >= i0; i--) {
            const int64_t l = FN(position)(a, k, i), xo = off_x + l * a->x_sl;
            const REAL *dl = delta + off_d + l * a->dl_sl;
            const REAL *Bl = Bm + off_B + l * a->B_sl, *Cl = Cm + off_C + l * a->C_sl;
            const VEC *hp = hbuf + (i - i0) * step, *hn = hbuf + (i - i0 + 1) * step;
            const VEC *dA = dAbuf + (i - i0) * step;
            VEC dt[MAX_NV], raw[MAX_NV], uv[MAX_NV], dyv[MAX_NV], gdt[MAX_NV], gu[MAX_NV];
            for (int v = 0; v < NV; v++) {
                dt[v] = FN(step_dt)(a, dl + v * VL, uc.bias[v], &raw[v]);
                uv[v] = VLOAD(u + xo + v * VL);
                dyv[v] = VLOAD(dy + xo + v * VL);
                gdt[v] = gu[v] = VSPLAT(0);
                gD[v] += dyv[v] * uv[v];
            }
            /* states in groups of 8, so that the 8 sums over lanes for dB and dC are one
             * transposing reduction rather than 8 separate horizontal sums */
            for (int64_t s0 = 0; s0 < n; s0 += 8) {
                const int cnt = n - s0 < 8 ? (int)(n - s0) : 8;
                VEC tC[8], tB[8];
                for (int j = 0; j < cnt; j++) {
                    const int64_t s = s0 + j;
                    const VEC bs = VSPLAT(Bl[s]), cs = VSPLAT(Cl[s]);
                    tC[j] = tB[j] = VSPLAT(0);
                    for (int v = 0; v < NV; v++) {
                        VEC gs = g[s][v] + dyv[v] * cs; /* total dLoss/dh_l[s] */
                        VEC decay = dA[s * NV + v] * hp[s * NV + v];
                        tC[j] += dyv[v] * hn[s * NV + v];
                        gdt[v] += gs * (uc.At[s][v] * decay + uv[v] * bs);
                        gu[v] += gs * bs;
                        gA[s][v] += gs * dt[v] * decay;
                        tB[j] += gs * dt[v] * uv[v];
                        g[s][v] = gs * dA[s * NV + v]; /* flows on to h_{l-1} */
                    }
                }
                VSTORESUMS(dC + l * K * n + s0, tC, cnt);
                VSTORESUMS(dB + l * K * n + s0, tB, cnt);
            }
            for (int v = 0; v < NV; v++) {
                VEC gdelta = a->softplus ? gdt[v] * VSIGMOID(raw[v]) : gdt[v];
                VSTORE((REAL *)a->du + xo + v * VL, gu[v] * dt[v] + uc.D[v] * dyv[v]);
                VSTORE((REAL *)a->ddelta + xo + v * VL, gdelta);
                gbias[v] += gdelta;
            }
        }
    }
    /* dA (batch, K, d, n), dD and dbias (batch, K, d): one partial per batch element */
    REAL *dAo = (REAL *)a->dA + ((b * K + k) * d + c0) * n;
    for (int64_t s = 0; s < n; s++)
        for (int v = 0; v < NV; v++) {
            REAL lanes[VL];
            VSTORE(lanes, gA[s][v]);
            for (int q = 0; q < VL; q++) dAo[(v * VL + q) * n + s] = lanes[q];
        }
    for (int v = 0; v < NV; v++) {
        if (a->dD) VSTORE((REAL *)a->dD + (b * K + k) * d + c0 + v * VL, gD[v]);
        if (a->dbias) VSTORE((REAL *)a->dbias + (b * K + k) * d + c0 + v * VL, gbias[v]);
    }
}

/* One entry point per variant; NV (vectors per unit) becomes a compile-time constant in each
 * inlined copy, so the state arrays live in registers / L1 and the loops unroll. */
KERNEL_ATTR int FN(pose3d_scan_forward_)(const ScanArgs *a) {
    if (a->n > MAX_STATE || a->width % VL || a->width / VL > MAX_NV || a->d % a->width) return 1;
    for (int64_t unit = a->unit_begin; unit < a->unit_end; unit++) switch (a->width / VL) {
#if MAX_NV >= 16
            case 16: FN(forward_unit)(a, unit, 16); break;
            case 8: FN(forward_unit)(a, unit, 8); break;
            case 4: FN(forward_unit)(a, unit, 4); break;
#endif
            case 2: FN(forward_unit)(a, unit, 2); break;
            default: FN(forward_unit)(a, unit, 1); break;
        }
    return 0;
}

KERNEL_ATTR int FN(pose3d_scan_backward_)(const ScanArgs *a) {
    if (a->n > MAX_STATE || a->width % VL || a->width / VL > MAX_NV || a->d % a->width || !a->hchk)
        return 1;
    const size_t vecs = (size_t)(a->chunk + 1) * a->n * (a->width / VL);
    VEC *hbuf = (VEC *)aligned_alloc(64, ((vecs * sizeof(VEC) + 63) / 64) * 64);
    VEC *dAbuf = (VEC *)aligned_alloc(64, ((vecs * sizeof(VEC) + 63) / 64) * 64);
    int status = 2;
    if (hbuf && dAbuf) {
        for (int64_t unit = a->unit_begin; unit < a->unit_end; unit++) switch (a->width / VL) {
#if MAX_NV >= 16
                case 16: FN(backward_unit)(a, unit, 16, hbuf, dAbuf); break;
                case 8: FN(backward_unit)(a, unit, 8, hbuf, dAbuf); break;
                case 4: FN(backward_unit)(a, unit, 4, hbuf, dAbuf); break;
#endif
                case 2: FN(backward_unit)(a, unit, 2, hbuf, dAbuf); break;
                default: FN(backward_unit)(a, unit, 1, hbuf, dAbuf); break;
            }
        status = 0;
    }
    free(hbuf);
    free(dAbuf);
    return status;
}

#undef MAX_NV
#undef FN
#undef CAT
#undef CAT_
