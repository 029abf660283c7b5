// The NonMaxSuppression overlap microkernel of nms.h for one path (LOWP_NMS_NAME): compiled
// once per instruction set from this source; every float step is one IEEE operation
// (-ffp-contract=off), so each path computes each kept box's test exactly as the scalar loop
// does and only the number of boxes tested at once differs.
#include <cstdint>

#include "nms.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace lowp {

namespace {

// nms_helpers::SuppressByIOU(candidate c, kept box k) (docs/operators.md (O243)), but for
// the candidate's own area test
inline bool overlaps(const NmsBox& c, const NmsBoxes& kept, int64_t k, float threshold) {
  // std::max(a, b) is (a < b) ? b : a, std::min(a, b) is (b < a) ? b : a; a the candidate
  const float ix_min = c.x_min < kept.x_min[k] ? kept.x_min[k] : c.x_min;
  const float ix_max = kept.x_max[k] < c.x_max ? kept.x_max[k] : c.x_max;
  if (ix_max <= ix_min) return false;
  const float iy_min = c.y_min < kept.y_min[k] ? kept.y_min[k] : c.y_min;
  const float iy_max = kept.y_max[k] < c.y_max ? kept.y_max[k] : c.y_max;
  if (iy_max <= iy_min) return false;
  const float inter = (ix_max - ix_min) * (iy_max - iy_min);
  if (inter <= 0.0f) return false;
  const float area = kept.area[k];
  const float uni = (c.area + area) - inter;
  if (area <= 0.0f || uni <= 0.0f) return false;
  return inter / uni > threshold;
}

}  // namespace

bool LOWP_NMS_NAME(const NmsBox& c, const NmsBoxes& kept, int64_t n, float threshold) {
  int64_t k = 0;
#if defined(__AVX512F__)
  const __m512 cx0 = _mm512_set1_ps(c.x_min), cx1 = _mm512_set1_ps(c.x_max);
  const __m512 cy0 = _mm512_set1_ps(c.y_min), cy1 = _mm512_set1_ps(c.y_max);
  const __m512 ca = _mm512_set1_ps(c.area), t = _mm512_set1_ps(threshold);
  const __m512 zero = _mm512_setzero_ps();
  for (; k + 16 <= n; k += 16) {
    const __m512 kx0 = _mm512_loadu_ps(kept.x_min + k), kx1 = _mm512_loadu_ps(kept.x_max + k);
    const __m512 ky0 = _mm512_loadu_ps(kept.y_min + k), ky1 = _mm512_loadu_ps(kept.y_max + k);
    const __m512 ka = _mm512_loadu_ps(kept.area + k);
    // blend(mask, a, b) takes b where the mask is set: the selections of `overlaps`
    const __m512 ix0 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(cx0, kx0, _CMP_LT_OQ), cx0, kx0);
    const __m512 ix1 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(kx1, cx1, _CMP_LT_OQ), cx1, kx1);
    const __m512 iy0 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(cy0, ky0, _CMP_LT_OQ), cy0, ky0);
    const __m512 iy1 = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(ky1, cy1, _CMP_LT_OQ), cy1, ky1);
    const __m512 inter = _mm512_mul_ps(_mm512_sub_ps(ix1, ix0), _mm512_sub_ps(iy1, iy0));
    const __m512 uni = _mm512_sub_ps(_mm512_add_ps(ca, ka), inter);
    const __m512 iou = _mm512_div_ps(inter, uni);
    // each `<= ... return false` as its negation, not-less-or-equal (true on NaN)
    __mmask16 m = _mm512_cmp_ps_mask(ix1, ix0, _CMP_NLE_UQ);
    m &= _mm512_cmp_ps_mask(iy1, iy0, _CMP_NLE_UQ);
    m &= _mm512_cmp_ps_mask(inter, zero, _CMP_NLE_UQ);
    m &= _mm512_cmp_ps_mask(ka, zero, _CMP_NLE_UQ);
    m &= _mm512_cmp_ps_mask(uni, zero, _CMP_NLE_UQ);
    m &= _mm512_cmp_ps_mask(iou, t, _CMP_GT_OQ);
    if (m) return true;
  }
#elif defined(__AVX2__)
  const __m256 cx0 = _mm256_set1_ps(c.x_min), cx1 = _mm256_set1_ps(c.x_max);
  const __m256 cy0 = _mm256_set1_ps(c.y_min), cy1 = _mm256_set1_ps(c.y_max);
  const __m256 ca = _mm256_set1_ps(c.area), t = _mm256_set1_ps(threshold);
  const __m256 zero = _mm256_setzero_ps();
  for (; k + 8 <= n; k += 8) {
    const __m256 kx0 = _mm256_loadu_ps(kept.x_min + k), kx1 = _mm256_loadu_ps(kept.x_max + k);
    const __m256 ky0 = _mm256_loadu_ps(kept.y_min + k), ky1 = _mm256_loadu_ps(kept.y_max + k);
    const __m256 ka = _mm256_loadu_ps(kept.area + k);
    // blendv(a, b, mask) takes b where the mask is set: the selections of `overlaps`
    const __m256 ix0 = _mm256_blendv_ps(cx0, kx0, _mm256_cmp_ps(cx0, kx0, _CMP_LT_OQ));
    const __m256 ix1 = _mm256_blendv_ps(cx1, kx1, _mm256_cmp_ps(kx1, cx1, _CMP_LT_OQ));
    const __m256 iy0 = _mm256_blendv_ps(cy0, ky0, _mm256_cmp_ps(cy0, ky0, _CMP_LT_OQ));
    const __m256 iy1 = _mm256_blendv_ps(cy1, ky1, _mm256_cmp_ps(ky1, cy1, _CMP_LT_OQ));
    const __m256 inter = _mm256_mul_ps(_mm256_sub_ps(ix1, ix0), _mm256_sub_ps(iy1, iy0));
    const __m256 uni = _mm256_sub_ps(_mm256_add_ps(ca, ka), inter);
    const __m256 iou = _mm256_div_ps(inter, uni);
    // each `<= ... return false` as its negation, not-less-or-equal (true on NaN)
    __m256 m = _mm256_cmp_ps(ix1, ix0, _CMP_NLE_UQ);
    m = _mm256_and_ps(m, _mm256_cmp_ps(iy1, iy0, _CMP_NLE_UQ));
    m = _mm256_and_ps(m, _mm256_cmp_ps(inter, zero, _CMP_NLE_UQ));
    m = _mm256_and_ps(m, _mm256_cmp_ps(ka, zero, _CMP_NLE_UQ));
    m = _mm256_and_ps(m, _mm256_cmp_ps(uni, zero, _CMP_NLE_UQ));
    m = _mm256_and_ps(m, _mm256_cmp_ps(iou, t, _CMP_GT_OQ));
    if (_mm256_movemask_ps(m)) return true;
  }
#endif
  for (; k < n; ++k)
    if (overlaps(c, kept, k, threshold)) return true;
  return false;
}

}  // namespace lowp
