/* gradcheck_shape.c — gradient-check cases for the data-movement ops of src/ops/shape.c (Reshape,
 * Flatten, Transpose, Concat, Split, Squeeze, Unsqueeze, Gather, Cast, Slice, Expand, Tile) and
 * src/ops/pad_resize.c (Pad, Resize, Upsample). Shapes, axes, starts, ... are int64 initializers.
 */
#include "gradcheck.h"

#include <stdint.h>

static const int64_t S234[3] = { 2, 3, 4 };

static void b_reshape(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_init_ints(b, "shape", 3, (const int64_t[]){ 0, -1, 2 });
    tb_node(b, "Reshape", "x,shape", "y");
    tb_output(b, "y");
}
static void b_flatten(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Flatten", "x", "y");
    tb_attr_int(b, "axis", -1);
    tb_output(b, "y");
}
static void b_transpose(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Transpose", "x", "y");
    tb_attr_ints(b, "perm", 3, (const int64_t[]){ 2, 0, 1 });
    tb_output(b, "y");
}
static void b_transpose4(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, (const int64_t[]){ 2, 3, 2, 4 });
    tb_node(b, "Transpose", "x", "y");
    tb_attr_ints(b, "perm", 4, (const int64_t[]){ 0, 2, 1, 3 });
    tb_output(b, "y");
}
static void b_concat(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 3, (const int64_t[]){ 2, 2, 3 });
    tb_input(b, "b", IDL_DT_F32, 3, (const int64_t[]){ 2, 3, 3 });
    tb_node(b, "Concat", "a,b,a", "y"); /* a twice: its gradient accumulates */
    tb_attr_int(b, "axis", -2);
    tb_output(b, "y");
}
static void b_split(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 2, (const int64_t[]){ 3, 6 });
    tb_init_ints(b, "split", 3, (const int64_t[]){ 1, 3, 2 });
    tb_node(b, "Split", "x,split", "y0,y1,y2");
    tb_attr_int(b, "axis", 1);
    tb_output(b, "y0"); /* each output is checked alone: the others get no gradient */
    tb_output(b, "y2");
}
static void b_split_equal(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Split", "x", "y0,y1");
    tb_attr_int(b, "axis", 2);
    tb_output(b, "y1");
}
static void b_squeeze(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, (const int64_t[]){ 2, 1, 3, 1 });
    tb_init_ints(b, "axes", 1, (const int64_t[]){ -3 });
    tb_node(b, "Squeeze", "x,axes", "y");
    tb_output(b, "y");
}
static void b_unsqueeze(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 2, (const int64_t[]){ 2, 3 });
    tb_init_ints(b, "axes", 2, (const int64_t[]){ 3, 0 });
    tb_node(b, "Unsqueeze", "x,axes", "y");
    tb_output(b, "y");
}
static void b_gather0(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 2, (const int64_t[]){ 5, 3 });
    tb_init_i64(b, "idx", 2, (const int64_t[]){ 2, 3 }, (const int64_t[]){ 0, 2, 2, -1, 4, 2 });
    tb_node(b, "Gather", "x,idx", "y"); /* repeated indices: scatter-add */
    tb_output(b, "y");
}
static void b_gather1(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_init_ints(b, "idx", 5, (const int64_t[]){ 1, -3, 1, 2, 0 });
    tb_node(b, "Gather", "x,idx", "y");
    tb_attr_int(b, "axis", 1);
    tb_output(b, "y");
}
static void b_cast(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Cast", "x", "y");
    tb_attr_int(b, "to", IDL_DT_F32);
    tb_output(b, "y");
}
/* Concat(x, Cast(Cast(x to int64) to float)): the integer path passes no gradient (and the
 * truncation is flat between integers) */
static void b_cast_int(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Cast", "x", "xi");
    tb_attr_int(b, "to", IDL_DT_I64);
    tb_node(b, "Cast", "xi", "xf");
    tb_attr_int(b, "to", IDL_DT_F32);
    tb_node(b, "Concat", "x,xf", "y");
    tb_attr_int(b, "axis", 0);
    tb_output(b, "y");
}
static void b_slice(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, (const int64_t[]){ 4, 6, 3 });
    tb_init_ints(b, "starts", 3, (const int64_t[]){ 1, -1, 0 });
    tb_init_ints(b, "ends", 3, (const int64_t[]){ 4, 0, 2 });
    tb_init_ints(b, "axes", 3, (const int64_t[]){ 0, 1, -1 });
    tb_init_ints(b, "steps", 3, (const int64_t[]){ 2, -2, 1 });
    tb_node(b, "Slice", "x,starts,ends,axes,steps", "y");
    tb_output(b, "y");
}
static void b_slice_rev(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 2, (const int64_t[]){ 3, 5 });
    tb_init_ints(b, "starts", 1, (const int64_t[]){ INT64_MAX });
    tb_init_ints(b, "ends", 1, (const int64_t[]){ INT64_MIN });
    tb_init_ints(b, "axes", 1, (const int64_t[]){ 1 });
    tb_init_ints(b, "steps", 1, (const int64_t[]){ -1 });
    tb_node(b, "Slice", "x,starts,ends,axes,steps", "y");
    tb_output(b, "y");
}
static void b_expand(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 2, (const int64_t[]){ 3, 1 });
    tb_init_ints(b, "shape", 3, (const int64_t[]){ 2, 1, 4 });
    tb_node(b, "Expand", "x,shape", "y");
    tb_output(b, "y");
}
static void b_tile(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 2, (const int64_t[]){ 2, 3 });
    tb_init_ints(b, "repeats", 2, (const int64_t[]){ 3, 2 });
    tb_node(b, "Tile", "x,repeats", "y");
    tb_output(b, "y");
}
static void b_pad_constant(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    float v = 1.5f;
    tb_init_ints(b, "pads", 6, (const int64_t[]){ 0, 1, -1, 1, 0, 2 });
    const int64_t none[1] = { 0 };
    tb_init_f32(b, "v", 0, none, &v);
    tb_node(b, "Pad", "x,pads,v", "y");
    tb_output(b, "y");
}
static void b_pad_reflect(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, (const int64_t[]){ 1, 2, 3, 4 });
    tb_init_ints(b, "pads", 8, (const int64_t[]){ 0, 0, 2, 1, 0, 0, 1, 3 });
    tb_node(b, "Pad", "x,pads", "y");
    tb_attr_str(b, "mode", "reflect");
    tb_output(b, "y");
}
static void b_pad_edge(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_init_ints(b, "pads", 6, (const int64_t[]){ 0, 2, 1, 0, 1, 2 });
    tb_node(b, "Pad", "x,pads", "y");
    tb_attr_str(b, "mode", "edge");
    tb_output(b, "y");
}
static void b_resize_nearest(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, (const int64_t[]){ 1, 2, 2, 3 });
    const float sc[4] = { 1, 1, 2.0f, 1.5f };
    tb_init_f32(b, "scales", 1, (const int64_t[]){ 4 }, sc);
    tb_node(b, "Resize", "x,,scales", "y");
    tb_attr_str(b, "mode", "nearest");
    tb_output(b, "y");
}
static void b_resize_linear(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, (const int64_t[]){ 2, 1, 3, 4 });
    tb_init_ints(b, "sizes", 4, (const int64_t[]){ 2, 1, 5, 3 });
    tb_node(b, "Resize", "x,,,sizes", "y");
    tb_attr_str(b, "mode", "linear");
    tb_output(b, "y");
}
static void b_resize_align(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, (const int64_t[]){ 2, 2, 4 });
    const float sc[3] = { 1, 1, 1.75f };
    tb_init_f32(b, "scales", 1, (const int64_t[]){ 3 }, sc);
    tb_node(b, "Resize", "x,,scales", "y");
    tb_attr_str(b, "mode", "linear");
    tb_attr_str(b, "coordinate_transformation_mode", "align_corners");
    tb_output(b, "y");
}
static void b_resize_3d(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 5, (const int64_t[]){ 1, 2, 2, 3, 2 });
    tb_init_ints(b, "sizes", 5, (const int64_t[]){ 1, 2, 3, 2, 4 });
    tb_node(b, "Resize", "x,,,sizes", "y");
    tb_attr_str(b, "mode", "linear");
    tb_attr_str(b, "coordinate_transformation_mode", "pytorch_half_pixel");
    tb_output(b, "y");
}
static void b_upsample_nearest(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, (const int64_t[]){ 1, 2, 2, 3 });
    const float sc[4] = { 1, 1, 2, 3 };
    tb_init_f32(b, "scales", 1, (const int64_t[]){ 4 }, sc);
    tb_node(b, "Upsample", "x,scales", "y");
    tb_output(b, "y");
}
static void b_upsample_linear(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, (const int64_t[]){ 2, 1, 3, 2 });
    const float sc[4] = { 1, 1, 2, 2.5f };
    tb_init_f32(b, "scales", 1, (const int64_t[]){ 4 }, sc);
    tb_node(b, "Upsample", "x,scales", "y");
    tb_attr_str(b, "mode", "linear");
    tb_output(b, "y");
}

const gc_case gc_cases_shape[] = { { "Reshape", "Reshape", b_reshape, 0, 0 },
                                   { "Flatten/negative_axis", "Flatten", b_flatten, 0, 0 },
                                   { "Transpose/3d", "Transpose", b_transpose, 0, 0 },
                                   { "Transpose/4d", "Transpose", b_transpose4, 0, 0 },
                                   { "Concat/repeated_input", "Concat", b_concat, 0, 0 },
                                   { "Split/sizes", "Split", b_split, 0, 0 },
                                   { "Split/equal", "Split", b_split_equal, 0, 0 },
                                   { "Squeeze", "Squeeze", b_squeeze, 0, 0 },
                                   { "Unsqueeze", "Unsqueeze", b_unsqueeze, 0, 0 },
                                   { "Gather/axis0_repeated", "Gather", b_gather0, 0, 0 },
                                   { "Gather/axis1", "Gather", b_gather1, 0, 0 },
                                   { "Cast/f32", "Cast", b_cast, 0, 0 },
                                   { "Cast/through_int", "Cast", b_cast_int, GC_POSITIVE, 0 },
                                   { "Slice/negative_step", "Slice", b_slice, 0, 0 },
                                   { "Slice/reverse_int64_limits", "Slice", b_slice_rev, 0, 0 },
                                   { "Expand", "Expand", b_expand, 0, 0 },
                                   { "Tile", "Tile", b_tile, 0, 0 },
                                   { "Pad/constant_crop", "Pad", b_pad_constant, 0, 0 },
                                   { "Pad/reflect", "Pad", b_pad_reflect, 0, 0 },
                                   { "Pad/edge", "Pad", b_pad_edge, 0, 0 },
                                   { "Resize/nearest_scales", "Resize", b_resize_nearest, 0, 0 },
                                   { "Resize/linear_half_pixel", "Resize", b_resize_linear, 0, 0 },
                                   { "Resize/linear_align_corners", "Resize", b_resize_align, 0,
                                     0 },
                                   { "Resize/trilinear_pytorch", "Resize", b_resize_3d, 0, 0 },
                                   { "Upsample/nearest", "Upsample", b_upsample_nearest, 0, 0 },
                                   { "Upsample/linear", "Upsample", b_upsample_linear, 0, 0 },
                                   GC_END };
