; src-tauri/windows/hooks.nsh
; NSIS_HOOK_PREINSTALL runs before the installer's own check that the app is closed, and
; that check knows only the main executable. While the app runs, leave its gateway alone
; (the app would start it again; closing the app stops it). With the app gone, end the
; gateways that run from this install dir (a killed app's gateway stops by itself within
; about 2 s, but its file may still be in use): never another app's.
!macro GATEWAY_EXAMPLE_STOP_SIDECAR
  nsExec::ExecToLog `powershell -NoProfile -NonInteractive -Command "$$all = Get-CimInstance Win32_Process; if (-not ($$all | Where-Object { $$_.ExecutablePath -eq '$INSTDIR\${MAINBINARYNAME}.exe' })) { $$all | Where-Object { $$_.ExecutablePath -eq '$INSTDIR\gateway-example-ai.exe' } | ForEach-Object { Stop-Process -Id $$_.ProcessId -Force -ErrorAction SilentlyContinue } }"`
  Pop $0 ; nsExec leaves its exit code on the stack
!macroend

!macro NSIS_HOOK_PREINSTALL
  !insertmacro GATEWAY_EXAMPLE_STOP_SIDECAR
!macroend

!macro NSIS_HOOK_PREUNINSTALL
  !insertmacro GATEWAY_EXAMPLE_STOP_SIDECAR
!macroend
