/**
 * resnet-cifar: the article's ResNet-18 trained on CIFAR-10 with TensorFlow.js in Deno.
 *
 * The library the notebook, `deno task train`, `deno task bench`, `deno task predict` and
 * `deno task serve` are built from. Its public API, by concern (each group below names the
 * module it comes from):
 *
 * - the data pipeline: {@linkcode loadCifar10}, {@linkcode epochBatches}, {@linkcode limitSplit}
 * - the model: {@linkcode resnet18}, {@linkcode residualBlock}, {@linkcode stageShapes}, and
 *   the other architectures ({@linkcode architecture}, {@linkcode buildModel})
 * - the depth experiment (He et al.'s Fig. 6): {@linkcode runDepthExperiment}
 * - training: {@linkcode train}, {@linkcode trainEpoch}, {@linkcode evaluate},
 *   {@linkcode inferBatches}, {@linkcode makeConfig}, checkpoints and run folders
 * - backends: {@linkcode initBackend}, and {@linkcode activateAcceleration} for a backend's hooks
 * - files and formats: the download and tar reader, atomic writes, safetensors, the TensorFlow.js
 *   model format, PyTorch weights, PNG
 * - figures and reports: {@linkcode curvesSvg}, {@linkcode confusionSvg} and friends, progress
 *   lines, the machine description
 * - using a trained model: {@linkcode classifyImageFile}, {@linkcode classifySplit}
 *
 * @example
 * ```ts ignore
 * import { initBackend, loadCifar10, makeConfig, train } from "./mod.ts";
 *
 * await initBackend("auto");
 * const data = await loadCifar10({ source: "../shared/data/cifar-10-binary.tar.gz" });
 * const config = makeConfig({ width: 16, trainLimit: 5000, testLimit: 1000, epochs: 1 });
 * const { model, evaluation } = await train({ config, data, runDir: "runs/smoke" });
 * console.log(`test accuracy ${(100 * evaluation.accuracy).toFixed(1)}%`);
 * model.dispose();
 * ```
 *
 * @module
 */
// The data pipeline (CIFAR-10)
export {
  augmentInto,
  type AugmentParams,
  type Batch,
  CHANNELS,
  type Cifar10,
  CIFAR10_CLASSES,
  CIFAR10_MEAN,
  CIFAR10_STD,
  CROP_PADDING,
  drawAugmentation,
  epochBatches,
  IMAGE_BYTES,
  IMAGE_SIZE,
  imageAt,
  limitSplit,
  loadCifar10,
  makeBatch,
  MAX_CROP_PADDING,
  normalizeInto,
  NUM_CLASSES,
  parseBatch,
  parseClassNames,
  RECORD_BYTES,
  type Split,
} from "./data.ts";

// The model (ResNet-18)
export {
  ARCH_EXAMPLES,
  type Architecture,
  architecture,
  type ArchName,
  ARTICLE_PYTORCH_PARAMETERS,
  type BlockSpec,
  buildModel,
  type BuildOptions,
  cifarStages,
  countTrainableParameters,
  MAX_CIFAR_DEPTH,
  pytorchUniform,
  residualBlock,
  resnet18,
  RESNET18_STAGES,
  RESNET34_STAGES,
  type ResNetOptions,
  SeedSequence,
  type StageShape,
  stageShapes,
  type StageSpec,
} from "./model.ts";

// Training and evaluation
export {
  type BatchProgress,
  chooseSubsets,
  createOptimizer,
  crossEntropy,
  type EpochTraining,
  estimateSecondsLeft,
  evaluate,
  type Evaluation,
  inferBatches,
  type InferenceBatch,
  NonFiniteLossError,
  train,
  type TrainCallbacks,
  trainEpoch,
  type TrainOptions,
  type TrainResult,
  trainStep,
} from "./train.ts";
export {
  BACKEND_NAMES,
  type BackendName,
  ConfigError,
  DEFAULT_CONFIG,
  learningRateAt,
  LR_SCHEDULES,
  type LrSchedule,
  makeConfig,
  MAX_SEED,
  MAX_WIDTH,
  ONE_CYCLE_END_DIVISOR,
  ONE_CYCLE_START_DIVISOR,
  ONE_CYCLE_WARMUP_FRACTION,
  PRESET_NAMES,
  type PresetName,
  PRESETS,
  type TrainConfig,
} from "./train/config.ts";
export {
  adamSlotNames,
  CHECKPOINT_FILE,
  restoreCheckpoint,
  saveCheckpoint,
  takeModelWeights,
} from "./train/checkpoint.ts";
export {
  openRunFolder,
  type OpenRunFolderOptions,
  type PreparedRunFolder,
  prepareRunFolder,
  resumeFromRunFolder,
  RUN_FILES,
  RunFolderError,
  type RunFolderMode,
  saveEpoch,
  saveFinalModel,
  saveHistory,
  startRunFolder,
} from "./train/run_folder.ts";
export {
  acquireRunLock,
  type AcquireRunLockOptions,
  LOCK_FILE,
  type LockOwner,
  type RunLock,
  RunLockError,
} from "./train/run_lock.ts";
export {
  type CheckpointState,
  type EpochRecord,
  parseCheckpointState,
} from "./train/checkpoint_state.ts";
export { Rng, type RngState } from "./train/rng.ts";

// Backends
export {
  type AdapterFacts,
  type AdapterProbe,
  type BackendInfo,
  describeAdapter,
  initBackend,
  type InitBackendOptions,
  probeWebgpuAdapter,
} from "./backends/init.ts";
export {
  type Acceleration,
  activateAcceleration,
  activeAcceleration,
  type LayerCall,
  layerPrototype,
  overrideGradient,
  overrideKernel,
  overrideLayerCall,
  overrideMethod,
  type Undo,
  undoAll,
} from "./backends/acceleration.ts";

// Files and formats
export {
  CIFAR10_ARCHIVE,
  CIFAR10_FOLDER,
  CIFAR10_MD5,
  CIFAR10_META_FILE,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
  CIFAR10_URL,
  type Cifar10Files,
  downloadFile,
  type DownloadOptions,
  type DownloadProgress,
  type LoadOptions,
  md5File,
  openCifar10Files,
} from "./io/download.ts";
export {
  extractTar,
  gunzip,
  readTar,
  readTarFiles,
  type ReadTarOptions,
  safeTarPath,
  type SelectOptions,
  TAR_BLOCK_BYTES,
  type TarEntry,
  type TarEntryType,
  type TarHeader,
} from "./io/tar.ts";
export { writeFileAtomic, writeTextFileAtomic } from "./io/atomic.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  type NamedArray,
  type SafeDtype,
  type SafeTensors,
} from "./io/safetensors.ts";
export { loadModel, saveModel } from "./io/tfjs_model.ts";
export {
  exportTorchSafetensors,
  importTorchSafetensors,
  loadTorchStateDict,
  toTorchStateDict,
} from "./io/torch_weights.ts";
export { encodePng, pngDataUrl } from "./io/png.ts";

// Figures and reports
export {
  type CaptionedImage,
  classBalanceSvg,
  confusionSvg,
  curvesSvg,
  type DepthCurve,
  depthSvg,
  htmlTable,
  type ImageGridOptions,
  imageGridSvg,
  type LayerValue,
  perClassSvg,
  perLayerSvg,
  sideBySide,
} from "./report/figures.ts";

// The depth experiment (He et al. 2015, Fig. 6)
export {
  DEFAULT_DEPTH_CONFIG,
  DEPTH_RECIPE,
  type DepthConfig,
  DepthConfigError,
  depthFigure,
  DepthFolderError,
  type DepthRecord,
  type DepthResults,
  makeDepthConfig,
  type ModelResult,
  runDepthExperiment,
} from "./experiment/depth.ts";
export { formatDuration, ProgressLine } from "./report/progress.ts";
export { describeMachine, type MachineInfo, machineInfo } from "./report/machine.ts";

// Using a trained model
export {
  type ClassifyFilesOptions,
  classifyImageFile,
  classifyImageFiles,
  type ClassifyOptions,
  classifyPixels,
  classifySplit,
  type ClassProbability,
  cropAndResize,
  DEFAULT_TOP_K,
  type FileResult,
  formatResults,
  loadRunModel,
  modelFolder,
  type Prediction,
  type SplitPrediction,
  topK,
} from "./predict/classify.ts";
export {
  checkImageHeader,
  decodeImage,
  exifOrientation,
  ImageError,
  type ImageHeader,
  MAX_DECODE_BYTES,
  MAX_FILE_BYTES,
  MAX_MEGAPIXELS,
  orient,
  readImageFile,
  type RgbImage,
  toCifarPixels,
} from "./predict/decode.ts";
export { hasSignature } from "./predict/image_header.ts";
