# th_add_cmocka_test(NAME name SOURCES a.c ... LIBS lib ...)
# Builds one cmocka program per module and registers every case found in its
# sources as `cmocka_unit_test(case)` (or the _setup_teardown forms) as its own
# ctest test, run as `prog case` (the program passes argv[1] to
# cmocka_set_test_filter).
function(th_add_cmocka_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} ${CMOCKA_LINK_LIBRARIES})
  target_include_directories(${T_NAME} PRIVATE ${CMOCKA_INCLUDE_DIRS} ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_definitions(${T_NAME} PRIVATE TH_TEST_SOURCE_DIR="${TH_SOURCE_DIR}")
  set(cases "")
  foreach(src ${T_SOURCES})
    file(STRINGS ${src} lines REGEX "cmocka_unit_test[a-z_]*\\([a-zA-Z0-9_]+")
    foreach(l ${lines})
      string(REGEX MATCH "cmocka_unit_test[a-z_]*\\(([a-zA-Z0-9_]+)" m "${l}")
      list(APPEND cases ${CMAKE_MATCH_1})
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES cases)
  foreach(c ${cases})
    add_test(NAME ${T_NAME}.${c} COMMAND ${T_NAME} ${c})
    set_tests_properties(${T_NAME}.${c} PROPERTIES
      ENVIRONMENT "TH_SOURCE_DIR=${TH_SOURCE_DIR};TH_BUILD_DIR=${CMAKE_BINARY_DIR};TH_LOCALEDIR=${CMAKE_BINARY_DIR}/locale"
      TIMEOUT 300 LABELS "${T_LABELS}")
  endforeach()
endfunction()
