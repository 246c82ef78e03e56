# Image pulls against a real registry (tests/e2e/registry_fixture.py starts docker-registry).
# KC_IMAGE_TOOL is the image store's CLI built in tests/unit/agent_image (= `kubec images ... --local`);
# KC_IMAGE_CONCURRENT pulls one image from many threads (coalescing).
kc_e2e_py(images test_images.py
          ENV "KC_IMAGE_TOOL=$<TARGET_FILE:kc_image_tool>;KC_IMAGE_CONCURRENT=$<TARGET_FILE:kc_image_concurrent>")
set_tests_properties(e2e.images PROPERTIES TIMEOUT 300)
