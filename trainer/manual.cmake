# Runs `seqpar --man` and `seqpar --bash-completion` into OUT/seqpar.1 and
# OUT/seqpar.bash (cmake -DSEQPAR=… -DOUT=… -P manual.cmake).
execute_process(COMMAND ${SEQPAR} --man OUTPUT_FILE ${OUT}/seqpar.1 RESULT_VARIABLE rc1)
execute_process(COMMAND ${SEQPAR} --bash-completion OUTPUT_FILE ${OUT}/seqpar.bash RESULT_VARIABLE rc2)
if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
  message(FATAL_ERROR "seqpar --man / --bash-completion failed (${rc1}, ${rc2})")
endif()
