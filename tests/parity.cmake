# parity.cmake — whole-model parity tests (label `parity`), included from tests/CMakeLists.txt.
#
#   test_parity            the committed fixtures in tests/data/parity (always): small_cnn,
#                          small_cnn_bn (one image input) and tiny_text (a BERT-style text encoder:
#                          three named int64 inputs, two sequence lengths on one session, gradients
#                          w.r.t. the embedding output and the attention probabilities; case.txt)
#   test_parity_generated  the generated models in IDL_PARITY_MODELS, when that variable names a
#                          folder (tests/reference/generate_all.sh BUILD_DIR writes BUILD_DIR/models;
#                          configure with -DIDL_PARITY_MODELS=BUILD_DIR/models). The folder must
#                          exist when the test runs: a missing or empty one fails it.
#   test_explain_generated the attention-method references on the generated ViTs (vit_grid12,
#                          vit_b_16) in IDL_PARITY_MODELS/explain, written by
#                          tests/reference/make_attention_explain.py --generated (generate_all.sh
#                          runs it): `test_explain --parity IDL_PARITY_MODELS/explain` (the
#                          test_explain target is defined in tests/CMakeLists.txt after this file
#                          is included; add_test resolves it at generation time). A missing folder
#                          fails it.
# The references come from tests/reference/*.py (PyTorch, ONNX Runtime, Paddle; the transformer
# cases from make_transformers.py); see the comment at the top of tests/test_parity.c for what is
# compared and to which tolerance.
set(IDL_PARITY_MODELS "" CACHE PATH "folder of generated parity models (tests/reference/generate_all.sh)")

add_executable(test_parity test_parity.c)
target_include_directories(test_parity PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${IDL_TEST_INCLUDES})
target_compile_options(test_parity PRIVATE ${IDL_WARN})
target_link_libraries(test_parity PRIVATE interpretdl m)

add_test(NAME test_parity COMMAND test_parity ${CMAKE_CURRENT_SOURCE_DIR}/data/parity)
set_tests_properties(test_parity PROPERTIES LABELS parity ENVIRONMENT "OMP_NUM_THREADS=2;IDL_PARITY_DIR="
                     TIMEOUT 300)

if(IDL_PARITY_MODELS)
  add_test(NAME test_parity_generated COMMAND test_parity ${IDL_PARITY_MODELS})
  set_tests_properties(test_parity_generated PROPERTIES LABELS parity
                       ENVIRONMENT "OMP_NUM_THREADS=2;IDL_PARITY_DIR=" TIMEOUT 1800)
  add_test(NAME test_explain_generated COMMAND test_explain --parity ${IDL_PARITY_MODELS}/explain)
  set_tests_properties(test_explain_generated PROPERTIES LABELS parity
                       ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 1800)
endif()
